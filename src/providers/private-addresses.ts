/**
 * The addresses a webhook notification's own `to` URL may not reach when
 * HERALD_WEBHOOK_PRIVATE_ADDRESSES=deny: private, loopback, link-local, shared (carrier-grade NAT),
 * benchmarking, documentation, multicast, reserved and unspecified ones, in IPv4 and IPv6, the
 * IPv6 forms that carry such an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, NAT64
 * `64:ff9b::a.b.c.d`), IPv6's tunnels to IPv4 (6to4, Teredo, IPv4-compatible), whatever IPv4
 * address they carry — and, when delivering, this machine's own addresses. Otherwise any caller with the `send` scope could make Herald POST to its own network: a cloud
 * metadata service, Redis on loopback, an internal admin page.
 *
 * Two checks use them. Send's validation refuses what the URL alone shows (`hostRule`: an IP
 * literal, `localhost`). Delivery is the authoritative one (`createAddressGuard`): an IP literal is
 * checked before connecting, and a host name is resolved once, every address checked, and the
 * connection made to those checked addresses only, so a name that resolves to a private address, or
 * starts to between the two checks, gets nowhere.
 */
import { lookup as systemLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { networkInterfaces } from 'node:os';
import { Agent } from 'undici';
import { PermanentDeliveryError } from '../domain/errors.js';

/** What a refused address is, and the setting that refuses it; names no URL. */
export const PRIVATE_ADDRESS_RULE =
  'must not be a private, loopback, link-local or reserved address (HERALD_WEBHOOK_PRIVATE_ADDRESSES=deny)';

/** Why a delivery was refused; names neither the URL nor the address. */
export const REFUSED_AT_DELIVERY =
  "the host of a webhook's to is a private, loopback, link-local or reserved address, or one of this machine's own (HERALD_WEBHOOK_PRIVATE_ADDRESSES=deny)";

const IPV4_RANGES: readonly (readonly [network: string, prefix: number])[] = [
  ['0.0.0.0', 8], // "this network": 0.0.0.0 reaches the local host
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // shared address space (carrier-grade NAT)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, where cloud metadata services answer
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation (TEST-NET-1): never routed, so only ever a local network's
  ['192.88.99.0', 24], // the former 6to4 relay anycast
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation (TEST-NET-2)
  ['203.0.113.0', 24], // documentation (TEST-NET-3)
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, with the broadcast address 255.255.255.255
];

const IPV6_RANGES: readonly (readonly [network: string, prefix: number])[] = [
  ['::', 96], // unspecified, loopback and the deprecated IPv4-compatible ::a.b.c.d
  ['::ffff:0:0:0', 96], // IPv4-translated (SIIT, ::ffff:0:a.b.c.d)
  ['64:ff9b:1::', 48], // local-use NAT64 (RFC 8215): translates into the operator's own network
  ['100::', 64], // discard-only
  ['2001::', 32], // Teredo: tunnels to an IPv4 address written into the address
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4: the same, with the IPv4 address in plain sight (2002:7f00:1::)
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated, still routed inside some networks)
  ['ff00::', 8], // multicast
];

/** IPv6 prefixes whose last 32 bits are the IPv4 address a connection reaches. */
const IPV4_CARRIERS = ['::ffff:', '64:ff9b::'] as const; // IPv4-mapped; NAT64 (RFC 6052)

const REFUSED = new BlockList();
for (const [network, prefix] of IPV4_RANGES) {
  REFUSED.addSubnet(network, prefix, 'ipv4');
  // Both written out: BlockList matches an IPv4 rule against IPv4-mapped addresses by itself, but
  // not against NAT64 ones, and an explicit rule does not hang on that behaviour.
  for (const carrier of IPV4_CARRIERS) {
    REFUSED.addSubnet(`${carrier}${network}`, 96 + prefix, 'ipv6');
  }
}
for (const [network, prefix] of IPV6_RANGES) REFUSED.addSubnet(network, prefix, 'ipv6');

/**
 * True when a webhook's own `to` must not reach `address` (an IPv4 or IPv6 address, as a resolver
 * or a URL's host gives it). A string that is not an IP address is refused too.
 */
export function isRefusedAddress(address: string): boolean {
  const family = isIP(address);
  // BlockList matches nothing it cannot parse: such a string would pass.
  if (family === 0) return true;
  return REFUSED.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * True when `address` is one of this machine's own (any interface's), which reaches the services
 * listening on all interfaces whatever range the address is in. The interfaces are read again after
 * `ttlMs`, so an address added later (DHCP, a new interface) is refused soon after.
 */
export function createOwnAddressCheck(
  ttlMs = 5_000,
  now: () => number = Date.now,
  interfaces: typeof networkInterfaces = networkInterfaces,
): (address: string) => boolean {
  let own = new BlockList();
  let readAt = -Infinity;
  return (address) => {
    const family = isIP(address);
    if (family === 0) return false;
    if (now() - readAt >= ttlMs) {
      own = new BlockList();
      for (const list of Object.values(interfaces())) {
        for (const a of list ?? []) {
          own.addAddress(a.address.replace(/%.*$/, ''), a.family === 'IPv4' ? 'ipv4' : 'ipv6');
        }
      }
      readAt = now();
    }
    // BlockList matches an IPv4-mapped address against its IPv4 entries (private-addresses.test).
    return own.check(address.replace(/%.*$/, ''), family === 4 ? 'ipv4' : 'ipv6');
  };
}

/**
 * The rule a webhook `to` URL breaks by its host alone — an IP literal in a refused range (as the
 * URL parser normalised it: `http://2130706433/` is 127.0.0.1), `localhost` or a name under
 * `.localhost` — or null. Other names are checked when delivering, once resolved.
 */
export function hostRule(url: URL): string | null {
  const literal = ipLiteralOf(url);
  if (literal !== null) return isRefusedAddress(literal) ? PRIVATE_ADDRESS_RULE : null;
  const name = url.hostname.replace(/\.+$/, '');
  return name === 'localhost' || name.endsWith('.localhost') ? PRIVATE_ADDRESS_RULE : null;
}

/** How a host name is resolved: every address, as dns.lookup with `all: true` gives them. */
export type ResolveHost = (hostname: string, options: LookupOptions) => Promise<LookupAddress[]>;

/** The system's resolver (getaddrinfo: /etc/hosts, then DNS), as node:net itself uses it. */
export const resolveWithSystem: ResolveHost = (hostname, options) =>
  new Promise((resolve, reject) => {
    systemLookup(hostname, { ...options, all: true }, (err, addresses) =>
      err ? reject(err) : resolve(addresses),
    );
  });

/**
 * A node:net `lookup` that resolves with `resolve` and refuses (with a PermanentDeliveryError of
 * `provider`) when any address is one `refuses`; otherwise it hands net exactly the addresses it
 * checked, so the connection goes to one of them and nothing is looked up a second time.
 */
export function checkedLookup(
  provider: string,
  resolve: ResolveHost,
  refuses: (address: string) => boolean = isRefusedAddress,
): LookupFunction {
  return (hostname, options, callback) => {
    void resolve(hostname, options).then(
      (addresses) => {
        // Any refused address refuses the host: which one net would pick is not ours to know.
        const refused = addresses.find((a) => refuses(a.address));
        const first = addresses[0];
        if (refused !== undefined) callback(refusal(provider), '');
        else if (first === undefined) callback(new Error(`${hostname}: no address`), '');
        else if (options.all === true) callback(null, addresses);
        else callback(null, first.address, first.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, ''),
    );
  };
}

export interface AddressGuard {
  /** Connects only to addresses `checkedLookup` let through. Use it with undici's fetch. */
  readonly dispatcher: Agent;
  /**
   * Throws the refusal when `url`'s host is an IP literal in a refused range: node:net connects to
   * a literal without looking it up, so the dispatcher never sees it.
   */
  checkLiteral(url: URL): void;
  close(): Promise<void>;
}

/**
 * The connection side of the rule, for `provider`'s requests to callers' URLs: by default the
 * refused ranges and this machine's own addresses.
 */
export function createAddressGuard(
  provider: string,
  resolve: ResolveHost = resolveWithSystem,
  refuses: (address: string) => boolean = refusedOrOwn(),
): AddressGuard {
  // TLS keeps the URL's host name for SNI and the certificate check: only the lookup is ours.
  const dispatcher = new Agent({ connect: { lookup: checkedLookup(provider, resolve, refuses) } });
  return {
    dispatcher,
    checkLiteral(url) {
      const literal = ipLiteralOf(url);
      if (literal !== null && refuses(literal)) throw refusal(provider);
    },
    close: () => dispatcher.close(),
  };
}

function refusedOrOwn(): (address: string) => boolean {
  const isOwn = createOwnAddressCheck();
  return (address) => isRefusedAddress(address) || isOwn(address);
}

/**
 * Names no address: the caller reads it back (the notification's last error), and the address a
 * host name resolved to would tell it about the network Herald runs in.
 */
function refusal(provider: string): PermanentDeliveryError {
  return new PermanentDeliveryError(`${provider}: refused to connect: ${REFUSED_AT_DELIVERY}`);
}

/** The IP address `url`'s host is written as (IPv6 without its brackets), or null for a name. */
function ipLiteralOf(url: URL): string | null {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return isIP(host) === 0 ? null : host;
}
