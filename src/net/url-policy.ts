import { isIP } from 'node:net'
import { canonicalAddress, isForbiddenAddress, isMetadataAddress } from './address-policy.ts'

/**
 * Checks on a URL that need no DNS: scheme, credentials, port, special-use host names, IP
 * literals in forbidden ranges (in any spelling WHATWG URL normalises) and an optional host
 * allow-list. Names that resolve to forbidden addresses are caught later, at connect time.
 */

export interface UrlPolicy {
  /** Accepted `URL.protocol` values, e.g. `['https:']`. */
  allowedSchemes: readonly string[]
  /** Called with the lower-case host name (no brackets, no trailing dot); false refuses the URL. */
  allowedHosts?: ((host: string) => boolean) | undefined
  /** Canonical IP addresses exempted from the address policy. */
  allowAddresses?: ReadonlySet<string> | undefined
  /**
   * Development only: private, loopback and local names are allowed too, cloud metadata never
   * (WEBHOOK_ALLOW_INSECURE).
   */
  allowPrivate?: boolean | undefined
  /** Refuse explicit non-default ports (`https://example.com:8443/`). */
  defaultPortOnly?: boolean | undefined
}

// Names that never leave the local network (RFC 6761, RFC 6762, RFC 8375, GCP's metadata.google.internal).
const LOCAL_SUFFIXES = ['.localhost', '.local', '.internal', '.home.arpa', '.localdomain'] as const

/** The host of a URL as policies see it: lower case, IPv6 brackets and a trailing dot removed. */
export function policyHost (url: URL): string {
  let host = url.hostname.toLowerCase()
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1)
  if (host.endsWith('.')) host = host.slice(0, -1)
  return host
}

export function isAddressPermitted (address: string, allowAddresses: ReadonlySet<string> | undefined, allowPrivate = false): boolean {
  if (allowPrivate && canonicalAddress(address) !== undefined && !isMetadataAddress(address)) return true
  if (allowAddresses !== undefined && allowAddresses.size > 0) {
    const canonical = canonicalAddress(address)
    if (canonical !== undefined && allowAddresses.has(canonical)) return true
  }
  return !isForbiddenAddress(address)
}

/** Why the URL is refused, or undefined when it passes. Messages name no address or host. */
export function urlPolicyViolation (url: URL, policy: UrlPolicy): string | undefined {
  if (!policy.allowedSchemes.includes(url.protocol)) {
    return `The URL scheme must be one of: ${policy.allowedSchemes.map((s) => s.replace(/:$/, '')).join(', ')}.`
  }
  if (url.username !== '' || url.password !== '') return 'The URL must not contain credentials.'
  if (policy.defaultPortOnly === true && url.port !== '') return 'The URL must use the default port.'
  const host = policyHost(url)
  if (host === '') return 'The URL has no host.'
  if (isIP(host) !== 0) {
    if (!isAddressPermitted(host, policy.allowAddresses, policy.allowPrivate)) return 'The URL points to a forbidden address.'
  } else if (host.endsWith('.internal')) {
    // metadata.google.internal among them; refused even in development.
    return 'The URL points to a local host name.'
  } else if (policy.allowPrivate !== true) {
    if (host === 'localhost' || LOCAL_SUFFIXES.some((suffix) => host.endsWith(suffix))) {
      return 'The URL points to a local host name.'
    }
    // Single-label names resolve through search domains to whatever the local network calls them.
    if (!host.includes('.')) return 'The URL host must be a fully qualified domain name.'
  }
  if (policy.allowedHosts !== undefined && !policy.allowedHosts(host)) return 'The URL host is not allowed.'
  return undefined
}

/**
 * An allow-list predicate for `allowedHosts`: an entry matches that exact host; an entry
 * starting with `*.` matches any subdomain of it (not the bare domain).
 */
export function createHostAllowList (entries: readonly string[]): (host: string) => boolean {
  const exact = new Set<string>()
  const suffixes: string[] = []
  for (const entry of entries) {
    const host = entry.trim().toLowerCase().replace(/\.$/, '')
    if (host.startsWith('*.')) suffixes.push(host.slice(1))
    else exact.add(host)
  }
  return (host) => {
    const name = host.toLowerCase().replace(/\.$/, '')
    return exact.has(name) || suffixes.some((suffix) => name.endsWith(suffix) && name.length > suffix.length)
  }
}
