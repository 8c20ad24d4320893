// Every application/problem+json answer rendered for people: what went wrong, what to do, and the details.
import { el } from './dom.js'

const HEADLINES = {
  validation_error: 'Some fields need another look',
  unauthorized: 'An API key is needed',
  insufficient_credits: 'Not enough credits',
  model_not_in_plan: 'This model is not in your plan',
  content_policy_violation: 'The content policy refused this',
  rate_limited: 'Too many requests',
  upstream_rate_limited: 'The image service is busy',
  upstream_queue_full: 'The image service is busy',
  service_unavailable: 'The service cannot take this right now',
  prediction_failed: 'The model failed',
  upstream_error: 'The image service failed',
  upstream_timeout: 'The image service took too long',
  not_found: 'Not found',
  network_error: 'The service could not be reached',
  idempotency_in_flight: 'The same request is still running',
  payload_too_large: 'The request is too large'
}

const CATEGORY_NAMES = { sexual: 'sexual content', violence: 'violence', hate: 'hate', self_harm: 'self-harm', selfharm: 'self-harm' }

function advice (problem, headers) {
  const retry = headers?.get?.('retry-after')
  switch (problem.code) {
    case 'unauthorized': return 'Enter a valid API key above (create one with npm run keys -- create).'
    // The detail already says what it needs and what remains.
    case 'insufficient_credits': return 'Choose fewer images or a cheaper model, or ask for a larger budget.'
    case 'content_policy_violation': {
      const cats = Array.isArray(problem.categories) && problem.categories.length > 0
        ? ` (${problem.categories.map((c) => CATEGORY_NAMES[String(c).toLowerCase()] ?? c).join(', ')})`
        : ''
      return `Rephrase the prompt${cats}. Nothing was charged.`
    }
    case 'model_not_in_plan': return 'Pick one of the models in the list.'
    case 'rate_limited':
    case 'upstream_rate_limited':
    case 'upstream_queue_full':
    case 'service_unavailable':
    case 'idempotency_in_flight':
      return retry ? `Try again in ${retry} s.` : 'Try again shortly.'
    default: return ''
  }
}

/** Shows `problem` in `container` (an ARIA alert); field errors also go next to their inputs in `form`. */
export function showProblem (container, problem, { status, headers, form } = {}) {
  clearProblem(container, form)
  const headline = HEADLINES[problem.code] ?? problem.title ?? 'Something went wrong'
  const detail = problem.detail ?? ''
  const body = [el('h2', { class: 'problem-title' }, headline)]
  if (detail) body.push(el('p', { class: 'problem-detail' }, detail))
  const tip = advice(problem, headers)
  if (tip) body.push(el('p', { class: 'problem-advice' }, tip))
  if (Array.isArray(problem.errors) && problem.errors.length > 0) {
    body.push(el('ul', { class: 'problem-fields' }, problem.errors.map((e) => el('li', {}, el('code', {}, e.field ?? ''), ` ${e.message ?? ''}`))))
    if (form) markFields(form, problem.errors)
  }
  const meta = []
  if (problem.code) meta.push(el('span', {}, 'code ', el('code', {}, problem.code)))
  if (status) meta.push(el('span', {}, `HTTP ${status}`))
  if (problem.prediction_id) meta.push(el('span', {}, 'prediction ', el('code', {}, problem.prediction_id)))
  if (problem.request_id) meta.push(el('span', {}, 'request ', el('code', {}, problem.request_id)))
  if (meta.length > 0) body.push(el('p', { class: 'problem-meta' }, meta))
  container.replaceChildren(...body)
  container.dataset.code = problem.code ?? ''
  container.hidden = false
}

export function clearProblem (container, form) {
  container.hidden = true
  container.replaceChildren()
  delete container.dataset.code
  if (!form) return
  for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid')
  for (const p of form.querySelectorAll('.field-error')) {
    p.hidden = true
    p.textContent = ''
  }
}

// `prompt`, `body.prompt`, `width` … to the form control that sets it.
const FIELD_CONTROLS = { prompt: 'prompt', model: 'model', width: 'size', height: 'size', seed: 'seed', num_outputs: 'num-outputs' }

function markFields (form, errors) {
  for (const e of errors) {
    const name = String(e.field ?? '').replace(/^body\./, '')
    const id = FIELD_CONTROLS[name]
    const control = id && form.querySelector(`#${id}`)
    const slot = id && form.querySelector(`#${id}-error`)
    if (!control || !slot) continue
    control.setAttribute('aria-invalid', 'true')
    slot.textContent = `${name} ${e.message ?? ''}`.trim()
    slot.hidden = false
  }
}
