import { describe, expect, it } from 'vitest'
import { canonicalAddress, isForbiddenAddress, isMetadataAddress } from '../../src/net/address-policy.ts'
import { createHostAllowList, urlPolicyViolation } from '../../src/net/url-policy.ts'

describe('isMetadataAddress, and allowPrivate (WEBHOOK_ALLOW_INSECURE)', () => {
  it('knows the cloud metadata endpoints in any spelling', () => {
    for (const ip of ['169.254.169.254', '169.254.170.2', '100.100.100.200', 'fd00:ec2::254', '::ffff:169.254.169.254', '0xa9.0xfe.0xa9.0xfe', 'fe80::1']) {
      expect(isMetadataAddress(ip), ip).toBe(true)
    }
    for (const ip of ['127.0.0.1', '10.0.0.1', '192.168.1.1', '::1', '8.8.8.8', '100.64.0.1']) expect(isMetadataAddress(ip), ip).toBe(false)
  })

  it('opens loopback, private addresses and local names, never metadata', () => {
    const policy = { allowedSchemes: ['https:', 'http:'], allowPrivate: true }
    for (const url of ['http://127.0.0.1:8080/hook', 'http://10.1.2.3/', 'http://[::1]/', 'http://localhost:3000/', 'http://receiver/hook']) {
      expect(urlPolicyViolation(new URL(url), policy), url).toBeUndefined()
    }
    for (const url of ['http://169.254.169.254/', 'http://100.100.100.200/', 'http://[fd00:ec2::254]/', 'http://metadata.google.internal/', 'http://[::ffff:a9fe:a9fe]/']) {
      expect(urlPolicyViolation(new URL(url), policy), url).toBeDefined()
    }
    expect(urlPolicyViolation(new URL('http://127.0.0.1/'), { allowedSchemes: ['https:', 'http:'] })).toBeDefined()
  })
})

describe('isForbiddenAddress', () => {
  const forbidden: Array<[string, string]> = [
    ['10.0.0.1', 'private 10/8'],
    ['10.255.255.255', 'private 10/8 top'],
    ['172.16.0.1', 'private 172.16/12 bottom'],
    ['172.31.255.254', 'private 172.16/12 top'],
    ['192.168.1.1', 'private 192.168/16'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback /8'],
    ['169.254.0.1', 'link-local'],
    ['169.254.169.254', 'cloud metadata'],
    ['100.100.100.200', 'Alibaba metadata'],
    ['100.64.0.1', 'CGNAT bottom'],
    ['100.127.255.254', 'CGNAT top'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'this network'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast SSDP'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['192.0.2.10', 'TEST-NET-1'],
    ['198.51.100.7', 'TEST-NET-2'],
    ['203.0.113.9', 'TEST-NET-3'],
    ['198.18.0.1', 'benchmarking'],
    ['192.0.0.170', 'IETF protocol assignments'],
    ['::1', 'IPv6 loopback'],
    ['0:0:0:0:0:0:0:1', 'IPv6 loopback, long form'],
    ['::', 'IPv6 unspecified'],
    ['[::1]', 'bracketed'],
    ['fe80::1', 'IPv6 link-local'],
    ['febf:ffff::1', 'IPv6 link-local top'],
    ['fc00::1', 'unique local fc'],
    ['fd12:3456::1', 'unique local fd'],
    ['fd00:ec2::254', 'AWS IPv6 metadata'],
    ['FD00:EC2:0:0:0:0:0:254', 'AWS IPv6 metadata, upper case long form'],
    ['ff02::1', 'IPv6 multicast'],
    ['::ffff:10.0.0.1', 'IPv4-mapped private'],
    ['::ffff:a00:1', 'IPv4-mapped private, hex'],
    ['::ffff:127.0.0.1', 'IPv4-mapped loopback'],
    ['::ffff:7f00:1', 'IPv4-mapped loopback, hex'],
    ['::ffff:169.254.169.254', 'IPv4-mapped metadata'],
    ['::ffff:a9fe:a9fe', 'IPv4-mapped metadata, hex'],
    ['0:0:0:0:0:ffff:a9fe:a9fe', 'IPv4-mapped metadata, long form'],
    ['64:ff9b::10.0.0.1', 'NAT64 private'],
    ['64:ff9b::a9fe:a9fe', 'NAT64 metadata, hex'],
    ['64:ff9b::7f00:1', 'NAT64 loopback'],
    ['64:ff9b:1::1', 'local-use NAT64'],
    ['::127.0.0.1', 'IPv4-compatible (deprecated)'],
    ['2001:db8::1', 'documentation'],
    ['2002:7f00:1::1', '6to4'],
    ['2001:0:4136:e378::1', 'Teredo'],
    ['fec0::1', 'site-local (deprecated)'],
    ['100::1', 'discard-only'],
    ['2130706433', 'decimal IPv4 (127.0.0.1)'],
    ['0x7f.1', 'hex with shorthand (127.0.0.1)'],
    ['0x7f000001', 'hex IPv4'],
    ['0177.0.0.1', 'octal IPv4'],
    ['127.1', 'shorthand IPv4'],
    ['0xa9.0xfe.0xa9.0xfe', 'hex dotted metadata'],
    ['2852039166', 'decimal metadata'],
    ['012.0.0.1', 'octal 10.0.0.1'],
    ['fe80::1%eth0', 'zone id'],
    ['example.com', 'not an IP: fails closed'],
    ['', 'empty: fails closed'],
    ['999.1.1.1', 'invalid: fails closed']
  ]
  it.each(forbidden)('refuses %s (%s)', (ip) => {
    expect(isForbiddenAddress(ip)).toBe(true)
  })

  const allowed: Array<[string, string]> = [
    ['8.8.8.8', 'public IPv4'],
    ['1.1.1.1', 'public IPv4'],
    ['172.15.255.255', 'just below 172.16/12'],
    ['172.32.0.1', 'just above 172.16/12'],
    ['100.63.255.255', 'just below CGNAT'],
    ['100.128.0.1', 'just above CGNAT'],
    ['169.255.0.1', 'just above link-local'],
    ['11.0.0.1', 'just above 10/8'],
    ['223.255.255.254', 'just below multicast'],
    ['134744072', 'decimal 8.8.8.8'],
    ['010.0.0.1', 'octal reading is 8.0.0.1, public'],
    ['2606:4700:4700::1111', 'public IPv6'],
    ['2a00:1450:4001:82a::200e', 'public IPv6'],
    ['::ffff:8.8.8.8', 'IPv4-mapped public'],
    ['64:ff9b::808:808', 'NAT64 public'],
    ['[2606:4700:4700::1111]', 'bracketed public IPv6']
  ]
  it.each(allowed)('allows %s (%s)', (ip) => {
    expect(isForbiddenAddress(ip)).toBe(false)
  })
})

describe('canonicalAddress', () => {
  it.each([
    ['2130706433', '127.0.0.1'],
    ['0x7f.1', '127.0.0.1'],
    ['0177.0.0.1', '127.0.0.1'],
    ['127.0.0.1.', '127.0.0.1'],
    ['[::FFFF:127.0.0.1]', '::ffff:7f00:1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['10.0.0.1', '10.0.0.1']
  ])('%s → %s', (input, expected) => {
    expect(canonicalAddress(input)).toBe(expected)
  })

  it.each(['example.com', 'abc.def', '', 'fe80::1%eth0', '1.2.3.4/8'])('%j is not an address', (input) => {
    expect(canonicalAddress(input)).toBeUndefined()
  })
})

describe('urlPolicyViolation', () => {
  const policy = { allowedSchemes: ['https:'] }
  const refused = [
    'http://example.com/a.png',
    'https://2130706433/',
    'https://0x7f.1/',
    'https://0177.0.0.1/',
    'https://127.1/',
    'https://%31%32%37.0.0.1/',
    'https://１２７.0.0.1/',
    'https://[::ffff:127.0.0.1]/',
    'https://[::ffff:a9fe:a9fe]/latest/meta-data',
    'https://[64:ff9b::a9fe:a9fe]/',
    'https://169.254.169.254/latest/meta-data',
    'https://[fd00:ec2::254]/',
    'https://100.100.100.200/',
    'https://localhost/',
    'https://LOCALHOST./',
    'https://api.localhost/',
    'https://metadata.google.internal/',
    'https://printer.local/',
    'https://router.home.arpa/',
    'https://intranet/',
    'https://user:pass@example.com/',
    'https://user@example.com/'
  ]
  it.each(refused)('refuses %s', (url) => {
    expect(urlPolicyViolation(new URL(url), policy)).toEqual(expect.any(String))
  })

  it.each(['https://example.com/a.png', 'https://8.8.8.8/x', 'https://[2606:4700:4700::1111]/', 'https://example.com:8443/'])('accepts %s', (url) => {
    expect(urlPolicyViolation(new URL(url), policy)).toBeUndefined()
  })

  it('refuses explicit ports when only the default port is allowed', () => {
    const strict = { ...policy, defaultPortOnly: true }
    expect(urlPolicyViolation(new URL('https://example.com:8443/'), strict)).toBe('The URL must use the default port.')
    expect(urlPolicyViolation(new URL('https://example.com:443/'), strict)).toBeUndefined()
  })

  it('exempts exactly the listed addresses', () => {
    const exempt = { allowedSchemes: ['http:'], allowAddresses: new Set(['127.0.0.1']) }
    expect(urlPolicyViolation(new URL('http://127.0.0.1:8080/'), exempt)).toBeUndefined()
    expect(urlPolicyViolation(new URL('http://2130706433/'), exempt)).toBeUndefined()
    expect(urlPolicyViolation(new URL('http://127.0.0.2/'), exempt)).toBe('The URL points to a forbidden address.')
    expect(urlPolicyViolation(new URL('http://[::1]/'), exempt)).toBe('The URL points to a forbidden address.')
  })

  it('applies the host allow-list after the other checks', () => {
    const allowedHosts = createHostAllowList(['replicate.delivery', '*.replicate.delivery', 'api.replicate.com'])
    const listed = { ...policy, allowedHosts }
    expect(urlPolicyViolation(new URL('https://replicate.delivery/x.png'), listed)).toBeUndefined()
    expect(urlPolicyViolation(new URL('https://pbxt.Replicate.Delivery./x.png'), listed)).toBeUndefined()
    expect(urlPolicyViolation(new URL('https://api.replicate.com/v1'), listed)).toBeUndefined()
    expect(urlPolicyViolation(new URL('https://evilreplicate.delivery/x.png'), listed)).toBe('The URL host is not allowed.')
    expect(urlPolicyViolation(new URL('https://replicate.delivery.evil.com/x.png'), listed)).toBe('The URL host is not allowed.')
    expect(urlPolicyViolation(new URL('https://www.replicate.com/'), listed)).toBe('The URL host is not allowed.')
  })
})

describe('createHostAllowList', () => {
  it('matches exact entries and subdomains of wildcard entries only', () => {
    const allowed = createHostAllowList(['example.com', '*.cdn.example.net'])
    expect(allowed('example.com')).toBe(true)
    expect(allowed('www.example.com')).toBe(false)
    expect(allowed('a.cdn.example.net')).toBe(true)
    expect(allowed('a.b.cdn.example.net')).toBe(true)
    expect(allowed('cdn.example.net')).toBe(false)
    expect(allowed('xcdn.example.net')).toBe(false)
  })
})
