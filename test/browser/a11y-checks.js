// Evaluated in the page under test (page.evaluate of this file's text): what keeps the page usable without a mouse
// or good eyesight. Returns { unlabelled, lowContrast }: controls without an accessible name, and visible text whose
// contrast against its background is under WCAG AA (4.5:1, or 3:1 for large text).
(() => {
  const rgb = (css) => {
    const m = /rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)/.exec(css)
    return m ? { r: +m[1], g: +m[2], b: +m[3], a: m[4] === undefined ? 1 : +m[4] } : null
  }
  const luminance = ({ r, g, b }) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4 }
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b)
  }
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const c = rgb(getComputedStyle(node).backgroundColor)
      if (c && c.a > 0.5) return c
    }
    return { r: 255, g: 255, b: 255 }
  }
  const visible = (el) => {
    const r = el.getBoundingClientRect()
    return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden' && !el.closest('[hidden]')
  }

  const unlabelled = []
  for (const el of document.querySelectorAll('input, select, textarea, button, a[href]')) {
    if (!visible(el)) continue
    const name = (el.labels && el.labels.length > 0) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') ||
      el.textContent.trim() || el.querySelector('img[alt]')
    if (!name) unlabelled.push(el.id || el.outerHTML.slice(0, 80))
  }

  const lowContrast = []
  for (const el of document.querySelectorAll('body *')) {
    const hasText = [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim() !== '')
    if (!hasText || !visible(el) || el.closest(':disabled, option')) continue
    const style = getComputedStyle(el)
    const fg = rgb(style.color)
    const ratio = (Math.max(luminance(fg), luminance(background(el))) + 0.05) / (Math.min(luminance(fg), luminance(background(el))) + 0.05)
    const size = parseFloat(style.fontSize)
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700)
    if (ratio < (large ? 3 : 4.5)) lowContrast.push(`${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''} "${el.textContent.trim().slice(0, 40)}": ${ratio.toFixed(2)}`)
  }
  return { unlabelled, lowContrast }
})()
