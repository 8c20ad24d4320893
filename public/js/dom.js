// A tiny element builder: text always goes in as text, never as HTML.

/** `el('a', { href, class: 'x' }, 'text', child, [more])`; attributes set to null or false are left out. */
export function el (tag, attrs = {}, ...children) {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue
    node.setAttribute(name, value === true ? '' : String(value))
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue
    node.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
  return node
}

const TIME = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' })

export function formatTime (iso) {
  const d = new Date(iso)
  return Number.isNaN(d.getTime()) ? '' : TIME.format(d)
}

export function plural (n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`
}
