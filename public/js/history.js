// The key's past predictions from GET /v1/predictions, newest first, a page at a time as the list scrolls into view.
import { api, ProblemError } from './api.js'
import { el, formatTime, plural } from './dom.js'

const PAGE_SIZE = 12

export class History {
  constructor ({ list, status, sentinel, onProblem, onOpen }) {
    this.list = list
    this.status = status
    this.sentinel = sentinel
    this.onProblem = onProblem
    this.onOpen = onOpen
    this.cursor = undefined
    this.done = false
    this.loading = false
    this.ids = new Set()
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) void this.more()
    }, { rootMargin: '200px' })
  }

  /** Empties the list and stops loading, saying why. */
  clear (message = '') {
    this.observer.disconnect()
    this.list.replaceChildren()
    this.ids.clear()
    this.cursor = undefined
    this.done = true
    this.status.textContent = message
  }

  /** Starts over (after the key changes) and loads the first page. */
  async reset () {
    this.clear()
    this.done = false
    await this.more()
    this.observer.observe(this.sentinel)
  }

  async more () {
    if (this.loading || this.done) return
    this.loading = true
    this.status.textContent = 'Loading history…'
    try {
      const query = new URLSearchParams({ limit: String(PAGE_SIZE) })
      if (this.cursor) query.set('cursor', this.cursor)
      const { body } = await api('GET', `/v1/predictions?${query}`)
      for (const p of body.data) this.add(p, 'end')
      this.cursor = body.next_cursor ?? undefined
      this.done = !body.next_cursor
      this.showCount()
    } catch (err) {
      this.done = true
      this.status.textContent = 'The history could not be loaded.'
      if (err instanceof ProblemError) this.onProblem(err)
    } finally {
      this.loading = false
    }
    // A short first page may leave the sentinel in view, which the observer does not report again.
    if (!this.done && this.sentinelVisible()) void this.more()
  }

  showCount () {
    this.status.textContent = this.done
      ? (this.ids.size === 0 ? 'Nothing yet: your predictions will be listed here.' : `All ${plural(this.ids.size, 'prediction')} shown.`)
      : `${plural(this.ids.size, 'prediction')} shown; scroll for more.`
  }

  sentinelVisible () {
    const r = this.sentinel.getBoundingClientRect()
    return r.top < window.innerHeight + 200 && r.bottom > -200
  }

  /** Shows `p` at the top (a new one) or the end (a page read), or updates it where it is. */
  add (p, where = 'start') {
    const item = this.render(p)
    const existing = this.list.querySelector(`[data-id="${CSS.escape(p.id)}"]`)
    if (existing) existing.replaceWith(item)
    else if (where === 'start') this.list.prepend(item)
    else this.list.append(item)
    this.ids.add(p.id)
    if (!this.loading) this.showCount()
  }

  render (p) {
    const thumb = Array.isArray(p.output) && p.output.length > 0
      ? el('img', { src: p.output[0], alt: `First image of prediction ${p.id}`, loading: 'lazy', width: 64, height: 64 })
      : el('span', { class: 'thumb-empty', 'aria-hidden': 'true' }, p.status === 'succeeded' ? '' : '—')
    const open = el('button', { type: 'button', class: 'link', 'aria-label': `Show prediction ${p.id}` }, thumb)
    open.addEventListener('click', () => this.onOpen(p))
    return el('li', { class: 'history-item', 'data-id': p.id, 'data-status': p.status },
      open,
      el('div', { class: 'history-text' },
        el('p', {}, el('span', { class: `badge status-${p.status}` }, p.status), ' ', el('strong', {}, p.model)),
        el('p', { class: 'muted' },
          formatTime(p.created_at), ' · ', plural(p.output?.length ?? 0, 'image'), ' · ', plural(p.cost_credits, 'credit')),
        el('p', { class: 'muted mono' }, p.id)))
  }
}
