import { BlockList, isIPv4, isIPv6 } from 'node:net'

/**
 * Which IP addresses the gateway may connect to on a caller's behalf. Everything that is not
 * plainly a public unicast address is refused: private and shared ranges, loopback, link-local,
 * cloud metadata endpoints, multicast, documentation and reserved blocks, and IPv6 forms that
 * embed any of those (IPv4-mapped, NAT64).
 */

/** Refused IPv4 blocks (CIDR). The metadata endpoints 169.254.169.254 and 100.100.100.200 fall inside them. */
export const FORBIDDEN_IPV4_RANGES = [
  '0.0.0.0/8', // "this network", includes the unspecified address
  '10.0.0.0/8',
  '100.64.0.0/10', // CGNAT shared space; Alibaba's metadata service is 100.100.100.200
  '127.0.0.0/8',
  '169.254.0.0/16', // link-local; AWS/GCP/Azure/OCI metadata is 169.254.169.254
  '172.16.0.0/12',
  '192.0.0.0/24', // IETF protocol assignments
  '192.0.2.0/24', // TEST-NET-1
  '192.88.99.0/24', // 6to4 relay anycast
  '192.168.0.0/16',
  '198.18.0.0/15', // benchmarking
  '198.51.100.0/24', // TEST-NET-2
  '203.0.113.0/24', // TEST-NET-3
  '224.0.0.0/4', // multicast
  '240.0.0.0/4' // reserved, includes the broadcast address 255.255.255.255
] as const

/**
 * Refused IPv6 blocks inside global unicast (2000::/3). Everything outside 2000::/3 is refused as
 * well (::, ::1, fc00::/7 with AWS's fd00:ec2::254, fe80::/10, ff00::/8, 64:ff9b:1::/48 ...), except
 * IPv4-mapped and NAT64 addresses, which are judged by the IPv4 address they carry.
 */
export const FORBIDDEN_IPV6_RANGES = [
  '2001::/23', // IETF protocol assignments, includes Teredo 2001::/32
  '2001:db8::/32', // documentation
  '2002::/16', // 6to4, which tunnels to an arbitrary IPv4 address
  '3fff::/20' // documentation
] as const

const forbiddenV4 = new BlockList()
for (const range of FORBIDDEN_IPV4_RANGES) {
  const [net, prefix] = range.split('/')
  forbiddenV4.addSubnet(net as string, Number(prefix), 'ipv4')
}

const forbiddenV6 = new BlockList()
for (const range of FORBIDDEN_IPV6_RANGES) {
  const [net, prefix] = range.split('/')
  forbiddenV6.addSubnet(net as string, Number(prefix), 'ipv6')
}

// Characters of the legacy IPv4 spellings WHATWG URL still accepts: 2130706433, 0x7f.1, 0177.0.0.1.
const LEGACY_IPV4 = /^[0-9a-fx.]+$/i

/**
 * The canonical form (dotted quad, or compressed lower-case IPv6 without brackets) of an IP
 * literal, or undefined when the input is not one. Legacy IPv4 spellings are normalised the way
 * WHATWG URL (and so undici) reads them, so "0x7f.1" and "2130706433" both give "127.0.0.1".
 * IPv6 zone ids are not accepted.
 */
export function canonicalAddress (input: string): string | undefined {
  let text = input.trim()
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1)
  if (text === '') return undefined
  if (isIPv6(text)) {
    if (text.includes('%')) return undefined
    return new URL(`http://[${text}]/`).hostname.slice(1, -1)
  }
  if (isIPv4(text)) return text
  if (!LEGACY_IPV4.test(text)) return undefined
  try {
    const host = new URL(`http://${text}/`).hostname
    return isIPv4(host) ? host : undefined
  } catch {
    return undefined
  }
}

/** The eight 16-bit groups of a canonical IPv6 address. */
function ipv6Groups (address: string): number[] {
  const [head = '', tail] = address.split('::')
  const parse = (part: string): number[] => part === '' ? [] : part.split(':').map((group) => parseInt(group, 16))
  const left = parse(head)
  if (tail === undefined) return left
  const right = parse(tail)
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right]
}

function ipv4FromGroups (high: number, low: number): string {
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`
}

/** The IPv4 address carried by an IPv4-mapped (::ffff:0:0/96) or NAT64 (64:ff9b::/96) address. */
function embeddedIPv4 (groups: number[]): string | undefined {
  const [g0, g1, g2, g3, g4, g5, g6 = 0, g7 = 0] = groups
  const zeroPrefix = g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0
  if (g0 === 0 && zeroPrefix && g5 === 0xffff) return ipv4FromGroups(g6, g7)
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) return ipv4FromGroups(g6, g7)
  return undefined
}

// Cloud metadata services: never reachable, whatever a development setting opens up.
const metadataV4 = new BlockList()
metadataV4.addSubnet('169.254.0.0', 16, 'ipv4')
metadataV4.addAddress('100.100.100.200', 'ipv4')
const METADATA_V6 = new Set(['fd00:ec2::254'])

/** True for cloud metadata endpoints (the link-local block, Alibaba's, AWS's IPv6 one), in any spelling. */
export function isMetadataAddress (ip: string): boolean {
  const address = canonicalAddress(ip)
  if (address === undefined) return true
  if (isIPv4(address)) return metadataV4.check(address, 'ipv4')
  const embedded = embeddedIPv4(ipv6Groups(address))
  if (embedded !== undefined) return metadataV4.check(embedded, 'ipv4')
  return METADATA_V6.has(address) || (((ipv6Groups(address)[0] ?? 0) & 0xffc0) === 0xfe80)
}

/**
 * True when the gateway must not connect to this address. Anything that is not an IP literal is
 * treated as forbidden, so a caller that passes a host name by mistake fails closed.
 */
export function isForbiddenAddress (ip: string): boolean {
  const address = canonicalAddress(ip)
  if (address === undefined) return true
  if (isIPv4(address)) return forbiddenV4.check(address, 'ipv4')
  const groups = ipv6Groups(address)
  const embedded = embeddedIPv4(groups)
  if (embedded !== undefined) return forbiddenV4.check(embedded, 'ipv4')
  const first = groups[0] ?? 0
  // Only global unicast (2000::/3) may be public; every other IPv6 block is local or special.
  if ((first & 0xe000) !== 0x2000) return true
  return forbiddenV6.check(address, 'ipv6')
}
