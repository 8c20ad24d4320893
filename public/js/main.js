// The playground: one page over the public API, on this origin, with the key typed once per tab.
import { api, ProblemError, storedKey, storeKey } from './api.js'
import { el, plural } from './dom.js'
import { History } from './history.js'
import { clearProblem, showProblem } from './problems.js'
import { follow, TERMINAL } from './progress.js'

const $ = (id) => document.getElementById(id)
const ui = {
  keyForm: $('key-form'), keyInput: $('api-key'), forgetKey: $('forget-key'), keyStatus: $('key-status'),
  form: $('generate-form'), prompt: $('prompt'), model: $('model'), size: $('size'), seed: $('seed'),
  numOutputs: $('num-outputs'), maxOutputs: $('max-outputs'), quote: $('quote'), generate: $('generate'), cancel: $('cancel'),
  problem: $('problem'),
  progressSection: $('progress-section'), progressBar: $('progress-bar'), progressVia: $('progress-via'), progressLog: $('progress-log'),
  resultsEmpty: $('results-empty'), warnings: $('warnings'), images: $('images')
}

const state = { catalog: new Map(), key: null, running: null }

const history = new History({
  list: $('history-list'),
  status: $('history-status'),
  sentinel: $('history-more'),
  onProblem: (err) => problem(err),
  onOpen: (p) => void reopen(p)
})

// A listed prediction's image URLs may have expired: read it again for freshly signed ones.
async function reopen (p) {
  try {
    const { body } = await api('GET', `/v1/predictions/${encodeURIComponent(p.id)}`)
    clearProblem(ui.problem, ui.form)
    showImages(body)
    $('results').scrollIntoView({ behavior: 'smooth', block: 'start' })
  } catch (err) {
    problem(err)
  }
}

function problem (err) {
  if (!(err instanceof ProblemError)) throw err
  showProblem(ui.problem, err.problem, { status: err.status, headers: err.headers, form: ui.form })
  ui.problem.focus()
}

// ---- the key and what it may do -------------------------------------------------------------------------------

async function loadAccount () {
  clearProblem(ui.problem, ui.form)
  ui.forgetKey.hidden = !storedKey()
  ui.keyInput.placeholder = storedKey() ? 'key in use' : 'fgw_…'
  try {
    const [{ body: key }, { body: catalog }] = await Promise.all([api('GET', '/v1/key'), api('GET', '/v1/models')])
    state.key = key
    state.catalog = new Map(catalog.models.map((m) => [m.id, m]))
  } catch (err) {
    state.key = null
    ui.keyForm.hidden = false
    setReady(false)
    ui.model.replaceChildren(el('option', {}, 'Enter a key first'))
    ui.quote.replaceChildren(el('span', { class: 'muted' }, 'The price appears here once a key is in use.'))
    history.clear('Enter a key to see your history.')
    if (err instanceof ProblemError && err.status === 401 && !storedKey()) {
      ui.keyStatus.textContent = 'This service needs an API key: enter yours above.'
      ui.keyInput.focus()
      return
    }
    if (err instanceof ProblemError && err.status === 401) {
      // A refused key is not kept: the next visit asks again instead of failing the same way.
      storeKey('')
      ui.forgetKey.hidden = true
      ui.keyInput.placeholder = 'fgw_…'
      ui.keyStatus.textContent = 'That key was refused: enter another.'
    } else {
      ui.keyStatus.textContent = 'No account information.'
    }
    return problem(err)
  }
  ui.keyStatus.textContent = state.key.authenticated
    ? `Key ${state.key.key_id} on the ${state.key.plan} plan. ${balanceText(state.key.balance)}`
    : 'Authentication is off on this service: no key is needed.'
  // Without authentication a key changes nothing, so there is nothing to type.
  ui.keyForm.hidden = !state.key.authenticated && !storedKey()
  fillModels()
  setReady(true)
  void updateQuote()
  void history.reset()
}

function balanceText (balance) {
  if (!balance || balance.remaining_credits === null) return 'No credit limit.'
  return `${plural(balance.remaining_credits, 'credit')} left${balance.period === 'month' ? ' this month' : ''}.`
}

function fillModels () {
  const previous = ui.model.value
  const allowed = state.key.models.filter((id) => state.catalog.has(id))
  ui.model.replaceChildren(...allowed.map((id) => {
    const m = state.catalog.get(id)
    return el('option', { value: id }, `${m.name} (${plural(m.credits_per_image, 'credit')} an image)`)
  }))
  ui.model.value = allowed.includes(previous) ? previous : (allowed.includes(state.key.default_model) ? state.key.default_model : allowed[0] ?? '')
  modelChanged()
}

function modelChanged () {
  const max = state.catalog.get(ui.model.value)?.max_outputs_per_prediction ?? 1
  ui.numOutputs.max = String(max)
  ui.maxOutputs.textContent = String(max)
  if (Number(ui.numOutputs.value) > max) ui.numOutputs.value = String(max)
}

function setReady (ready) {
  ui.model.disabled = !ready
  ui.generate.disabled = !ready || state.running !== null
}

ui.keyForm.addEventListener('submit', (ev) => {
  ev.preventDefault()
  const key = ui.keyInput.value.trim()
  if (!key) return
  storeKey(key)
  ui.keyInput.value = ''
  void loadAccount()
})

ui.forgetKey.addEventListener('click', () => {
  storeKey('')
  ui.keyInput.focus()
  void loadAccount()
})

// ---- the quote ------------------------------------------------------------------------------------------------

let quoteSeq = 0

async function updateQuote () {
  const model = ui.model.value
  const n = Math.max(1, Math.trunc(Number(ui.numOutputs.value)) || 1)
  if (!model) return
  const seq = ++quoteSeq
  try {
    const { body: q } = await api('POST', '/v1/quotes', { body: { model, num_images: n } })
    if (seq !== quoteSeq) return
    const remaining = state.key?.balance?.remaining_credits
    const parts = [
      el('strong', {}, plural(q.total_credits, 'credit')),
      ` for ${plural(q.num_images, 'image')} of ${state.catalog.get(model)?.name ?? model}`,
      el('span', { class: 'muted' }, ` (about $${q.total_usd.toFixed(3)} upstream)`),
      '. '
    ]
    if (remaining === null || remaining === undefined) parts.push(el('span', { class: 'muted' }, 'No credit limit.'))
    else if (remaining < q.total_credits) parts.push(el('span', { class: 'over' }, `More than the ${plural(remaining, 'credit')} you have left.`))
    else parts.push(el('span', { class: 'muted' }, `${plural(remaining, 'credit')} left before, ${remaining - q.total_credits} after.`))
    ui.quote.replaceChildren(...parts)
    ui.quote.dataset.credits = String(q.total_credits)
  } catch (err) {
    if (seq !== quoteSeq) return
    ui.quote.replaceChildren(el('span', { class: 'over' }, `No price: ${err instanceof ProblemError ? err.message : 'unknown error'}`))
  }
}

ui.model.addEventListener('change', () => { modelChanged(); void updateQuote() })
ui.numOutputs.addEventListener('input', () => void updateQuote())

// ---- generating -----------------------------------------------------------------------------------------------

function requestBody () {
  const [width, height] = ui.size.value.split('x').map(Number)
  const body = { prompt: ui.prompt.value, model: ui.model.value, width, height, num_outputs: Math.trunc(Number(ui.numOutputs.value)) || 1 }
  if (ui.seed.value.trim() !== '') body.seed = Number(ui.seed.value)
  return body
}

// Makes a double submit (or a retry after a dropped answer) one prediction; works outside secure contexts too.
function idempotencyKey () {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('')
}

ui.form.addEventListener('submit', (ev) => {
  ev.preventDefault()
  if (state.running) return
  void generate()
})

async function generate () {
  clearProblem(ui.problem, ui.form)
  const run = { controller: new AbortController(), prediction: null, startedAt: performance.now(), timer: null }
  state.running = run
  ui.generate.disabled = true
  ui.generate.textContent = 'Generating…'
  ui.cancel.hidden = false
  ui.progressLog.replaceChildren()
  ui.progressVia.textContent = ''
  ui.progressBar.removeAttribute('value')
  ui.progressSection.hidden = false
  ui.progressSection.dataset.state = 'running'
  const body = requestBody()
  try {
    logStep('sending', 'Sending the request…')
    const created = await api('POST', '/v1/text-to-image', {
      body,
      headers: { prefer: 'respond-async', 'idempotency-key': idempotencyKey() },
      signal: run.controller.signal
    })
    run.prediction = created.body
    history.add(created.body)
    const typical = state.catalog.get(created.body.model)?.typical_seconds ?? 5
    run.timer = setInterval(() => tick(run, typical), 250)
    const final = await follow(created.body, {
      signal: run.controller.signal,
      onUpdate: (p, via) => {
        run.prediction = p
        if (via !== 'create') ui.progressVia.textContent = via === 'events' ? 'Live updates by server-sent events.' : 'Following by long-polling (the service has no event stream).'
        logStep(p.status, statusText(p))
        history.add(p)
      }
    })
    finish(final)
  } catch (err) {
    if (err.name === 'AbortError') return
    ui.progressSection.dataset.state = 'failed'
    ui.progressBar.value = 0
    // A refused request made no prediction: the message says it all.
    if (run.prediction) logStep('error', 'Stopped: see the message.')
    else ui.progressSection.hidden = true
    problem(err)
  } finally {
    clearInterval(run.timer)
    state.running = null
    ui.generate.disabled = false
    ui.generate.textContent = 'Generate'
    ui.cancel.hidden = true
    void refreshBalance()
  }
}

function tick (run, typicalSeconds) {
  if (run.prediction?.status !== 'processing') return
  const elapsed = (performance.now() - run.startedAt) / 1000
  // An estimate from the model's typical time that slows as it nears the end rather than stalling at 100.
  ui.progressBar.value = Math.round(95 * (1 - Math.exp(-elapsed / typicalSeconds)))
}

function statusText (p) {
  switch (p.status) {
    case 'starting': return 'Queued: waiting for the model to start.'
    case 'processing': return 'The model is drawing.'
    case 'succeeded': return `Done: ${plural(p.output?.length ?? 0, 'image')}, ${plural(p.cost_credits, 'credit')}.`
    case 'failed': return `Failed: ${p.error?.message ?? 'the model failed'}.`
    case 'canceled': return `Canceled${p.cost_credits > 0 ? ` after it started (${plural(p.cost_credits, 'credit')})` : ' (nothing charged)'}.`
    case 'aborted': return 'Aborted: it could not start in time (nothing charged).'
    default: return p.status
  }
}

function logStep (status, text) {
  const seconds = ((performance.now() - (state.running?.startedAt ?? performance.now())) / 1000).toFixed(1)
  ui.progressLog.append(el('li', { 'data-status': status }, el('span', { class: `badge status-${status}` }, status), ` ${text} `, el('span', { class: 'muted' }, `${seconds} s`)))
}

function finish (p) {
  ui.progressSection.dataset.state = p.status
  if (p.status === 'succeeded') {
    ui.progressBar.value = 100
    showImages(p)
    return
  }
  ui.progressBar.value = 0
  if (p.status === 'failed' || p.status === 'aborted') {
    const code = p.error?.code ?? (p.status === 'aborted' ? 'deadline_exceeded' : 'prediction_failed')
    showProblem(ui.problem, { code, title: 'The prediction did not succeed', detail: p.error?.message ?? statusText(p), prediction_id: p.id }, { form: ui.form })
    ui.problem.focus()
  }
}

function showImages (p) {
  // width and height adjusted together say the same thing twice: one line per message, naming its fields.
  const byMessage = new Map()
  for (const w of p.warnings ?? []) byMessage.set(w.message, [...(byMessage.get(w.message) ?? []), w.field])
  ui.warnings.replaceChildren(...[...byMessage].map(([message, fields]) => el('li', {}, el('code', {}, fields.join(', ')), ` ${message}`)))
  ui.warnings.hidden = ui.warnings.childElementCount === 0
  const urls = Array.isArray(p.output) ? p.output : []
  const ext = state.catalog.get(p.model)?.default_output_format ?? 'webp'
  ui.images.replaceChildren(...urls.map((url, i) => el('li', {},
    el('figure', {},
      el('a', { href: url, target: '_blank', rel: 'noopener' },
        el('img', { src: url, alt: `Image ${i + 1} of ${urls.length} from ${p.model}, prediction ${p.id}` })),
      el('figcaption', {},
        el('a', { href: url, download: `${p.id}-${i + 1}.${ext}`, class: 'download' }, `Download image ${i + 1}`))))))
  ui.resultsEmpty.textContent = urls.length > 0
    ? `${plural(urls.length, 'image')} from ${p.model} (prediction ${p.id}). Links work for a limited time; open the prediction again for fresh ones.`
    : `Prediction ${p.id} has no images (${p.status}).`
  ui.images.dataset.prediction = p.id
}

ui.cancel.addEventListener('click', async () => {
  const run = state.running
  if (!run?.prediction || TERMINAL.has(run.prediction.status)) return
  ui.cancel.disabled = true
  try {
    await api('POST', `/v1/predictions/${encodeURIComponent(run.prediction.id)}/cancel`)
  } catch (err) {
    problem(err)
  } finally {
    ui.cancel.disabled = false
  }
})

async function refreshBalance () {
  try {
    const { body } = await api('GET', '/v1/key')
    state.key = body
    if (body.authenticated) ui.keyStatus.textContent = `Key ${body.key_id} on the ${body.plan} plan. ${balanceText(body.balance)}`
    void updateQuote()
  } catch {
    // The next action reports it.
  }
}

void loadAccount()
