import type { LookupAddress, LookupOptions } from 'node:dns';
import { BlockList } from 'node:net';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { PermanentDeliveryError } from '../../src/domain/errors.js';
import {
  checkedLookup,
  createAddressGuard,
  createOwnAddressCheck,
  hostRule,
  isRefusedAddress,
  PRIVATE_ADDRESS_RULE,
  REFUSED_AT_DELIVERY,
  type ResolveHost,
} from '../../src/providers/private-addresses.js';

describe('createOwnAddressCheck', () => {
  const iface = (address: string): NetworkInterfaceInfo =>
    ({ address, family: address.includes(':') ? 'IPv6' : 'IPv4' }) as NetworkInterfaceInfo;

  it("is true for the interfaces' addresses, also IPv4-mapped, and reads them again after the ttl", () => {
    let clock = 0;
    let table: Record<string, NetworkInterfaceInfo[]> = {
      eth0: [iface('203.0.113.7'), iface('2a01:4f8::7'), iface('fe80::1%eth0')],
    };
    const isOwn = createOwnAddressCheck(
      1_000,
      () => clock,
      () => table,
    );

    expect(isOwn('203.0.113.7')).toBe(true);
    expect(isOwn('::ffff:203.0.113.7')).toBe(true);
    expect(isOwn('2a01:4f8::7')).toBe(true);
    expect(isOwn('fe80::1')).toBe(true);
    expect(isOwn('203.0.113.8')).toBe(false);
    expect(isOwn('not an address')).toBe(false);

    table = { eth0: [iface('198.51.100.9')] };
    clock = 999;
    expect(isOwn('198.51.100.9')).toBe(false);
    clock = 1_000;
    expect(isOwn('198.51.100.9')).toBe(true);
    expect(isOwn('203.0.113.7')).toBe(false);
  });
});

describe('isRefusedAddress', () => {
  it.each([
    // The first and last address of every refused IPv4 range.
    ['0.0.0.0', '0.255.255.255'],
    ['10.0.0.0', '10.255.255.255'],
    ['100.64.0.0', '100.127.255.255'],
    ['127.0.0.1', '127.255.255.255'],
    ['169.254.0.0', '169.254.169.254'],
    ['172.16.0.0', '172.31.255.255'],
    ['192.0.0.0', '192.0.0.255'],
    ['192.168.0.0', '192.168.255.255'],
    ['198.18.0.0', '198.19.255.255'],
    ['192.0.2.0', '192.0.2.255'],
    ['192.88.99.0', '192.88.99.255'],
    ['198.51.100.0', '198.51.100.255'],
    ['203.0.113.0', '203.0.113.255'],
    ['224.0.0.0', '239.255.255.255'],
    ['240.0.0.0', '255.255.255.255'],
  ])('is true for IPv4 %s and %s', (first, last) => {
    expect(isRefusedAddress(first)).toBe(true);
    expect(isRefusedAddress(last)).toBe(true);
  });

  it.each([
    '::',
    '::1',
    '0:0:0:0:0:0:0:1',
    'fc00::',
    'fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    'fe80::1',
    'FE80::1',
    'febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    'ff00::',
    'ff02::1',
    '::7f00:1',
    '::93.184.216.34',
    '::ffff:0:7f00:1',
    '::ffff:0:5db8:d822',
    '2001:db8::1',
    '64:ff9b:1::a00:5',
    '100::1',
    '2001::1',
    '2001:0:ffff:ffff:ffff:ffff:ffff:ffff',
    '2002:7f00:1::',
    '2002:5db8:d822::1',
    'fec0::1',
    'feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
  ])('is true for IPv6 %s', (address) => {
    expect(isRefusedAddress(address)).toBe(true);
  });

  it.each([
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '0:0:0:0:0:ffff:7f00:1',
    '::ffff:10.0.0.5',
    '::ffff:169.254.169.254',
    '::ffff:a9fe:a9fe',
    '::ffff:0.0.0.0',
    '::ffff:255.255.255.255',
    '64:ff9b::127.0.0.1',
    '64:ff9b::7f00:1',
    '64:ff9b::10.0.0.5',
    '64:ff9b::a9fe:a9fe',
    '64:ff9b::',
    '64:ff9b::c0a8:101',
  ])('is true for %s, the IPv4-mapped or NAT64 form of a refused IPv4 address', (address) => {
    expect(isRefusedAddress(address)).toBe(true);
  });

  it('is true for a scoped link-local address', () => {
    expect(isRefusedAddress('fe80::1%eth0')).toBe(true);
    expect(isRefusedAddress('fe80::1%2')).toBe(true);
  });

  it.each(['', 'example.com', 'localhost', '127.0.0.1.', '[::1]', '1.2.3'])(
    'is true for %j, which is not an IP address',
    (s) => {
      expect(isRefusedAddress(s)).toBe(true);
    },
  );

  it.each([
    '93.184.216.34',
    '8.8.8.8',
    '1.1.1.1',
    // Just outside the refused ranges (unallocated or deprecated ones included).
    '9.255.255.255',
    '11.0.0.0',
    '100.63.255.255',
    '100.128.0.0',
    '126.255.255.255',
    '128.0.0.0',
    '169.253.255.255',
    '169.255.0.0',
    '172.15.255.255',
    '172.32.0.0',
    '192.0.1.0',
    '192.167.255.255',
    '192.169.0.0',
    '198.17.255.255',
    '198.20.0.0',
    '223.255.255.255',
    '2606:4700::1',
    '2001:4860:4860::8888',
    'fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    'fe00::1',
    '2001:1::1',
    '2001:db9::1',
    '192.0.3.0',
    '198.51.101.0',
    '203.0.114.0',
    '2003::1',
    '64:ff9b:2::1',
    '100:0:0:1::',
    '::ffff:93.184.216.34',
    '::ffff:5db8:d822',
    '64:ff9b::93.184.216.34',
    '64:ff9b::808:808',
  ])('is false for %s, outside every refused range', (address) => {
    expect(isRefusedAddress(address)).toBe(false);
  });
});

describe('net.BlockList', () => {
  // What the explicit IPv4-mapped and NAT64 rules in private-addresses.ts do not rely on.
  it('matches an IPv4 rule against IPv4-mapped addresses, but not against NAT64 ones', () => {
    const list = new BlockList();
    list.addSubnet('127.0.0.0', 8, 'ipv4');

    expect(list.check('::ffff:127.0.0.1', 'ipv6')).toBe(true);
    expect(list.check('::ffff:7f00:1', 'ipv6')).toBe(true);
    expect(list.check('64:ff9b::7f00:1', 'ipv6')).toBe(false);
    expect(list.check('::ffff:8.8.8.8', 'ipv6')).toBe(false);
  });

  it('matches a scoped address by its address, and nothing that is not an address', () => {
    const list = new BlockList();
    list.addSubnet('fe80::', 10, 'ipv6');
    list.addSubnet('0.0.0.0', 0, 'ipv4');

    expect(list.check('fe80::1%eth0', 'ipv6')).toBe(true);
    expect(list.check('localhost', 'ipv4')).toBe(false);
    expect(list.check('', 'ipv4')).toBe(false);
  });
});

describe('hostRule', () => {
  it.each([
    'http://127.0.0.1:6379/',
    'http://2130706433/',
    'http://0x7f.1/',
    'http://0177.0.0.1/',
    'http://127.1/',
    'http://0/',
    'http://[::1]:8080/',
    'http://[::ffff:127.0.0.1]/',
    'http://[64:ff9b::169.254.169.254]/',
    'http://169.254.169.254/latest/meta-data',
    'http://10.0.0.5/admin',
    'https://192.168.1.1/',
    'http://[fd00::1]/',
    'http://localhost:8080/hook',
    'http://LOCALHOST./hook',
    'http://api.localhost/',
    'http://a.b.localhost./',
  ])('refuses %s, naming the rule', (url) => {
    expect(hostRule(new URL(url))).toBe(PRIVATE_ADDRESS_RULE);
  });

  it.each([
    'https://hooks.example.com/orders?token=abc',
    'http://93.184.216.34/',
    'http://[2606:4700::1]/',
    'http://localhost.example.com/',
    'http://notlocalhost/',
    'http://localhostx/',
    // Resolved, and refused if need be, when delivering.
    'http://metadata.internal/',
  ])('lets %s through', (url) => {
    expect(hostRule(new URL(url))).toBeNull();
  });
});

/** Calls `lookup` as node:net does and returns what it called back with. */
function lookUp(
  lookup: ReturnType<typeof checkedLookup>,
  hostname: string,
  options: LookupOptions,
): Promise<{ err: Error | null; address: string | LookupAddress[]; family?: number }> {
  return new Promise((resolve) => {
    lookup(hostname, options, (err, address, family) => resolve({ err, address, family }));
  });
}

function resolverOf(...addresses: LookupAddress[]): ResolveHost & { calls: string[] } {
  const calls: string[] = [];
  return Object.assign(
    (hostname: string) => {
      calls.push(hostname);
      return Promise.resolve(addresses);
    },
    { calls },
  );
}

const PUBLIC_V4 = { address: '93.184.216.34', family: 4 };
const PUBLIC_V6 = { address: '2606:4700::1', family: 6 };

describe('checkedLookup', () => {
  it('hands net every address the resolver gave, once checked, when asked for all', async () => {
    const resolve = resolverOf(PUBLIC_V6, PUBLIC_V4);

    const result = await lookUp(checkedLookup('hook', resolve), 'hooks.example.com', {
      all: true,
    });

    expect(result).toEqual({ err: null, address: [PUBLIC_V6, PUBLIC_V4], family: undefined });
    expect(resolve.calls).toEqual(['hooks.example.com']);
  });

  it('hands net the first address and its family when asked for one', async () => {
    const result = await lookUp(
      checkedLookup('hook', resolverOf(PUBLIC_V6, PUBLIC_V4)),
      'hooks.example.com',
      {},
    );

    expect(result).toEqual({ err: null, address: '2606:4700::1', family: 6 });
  });

  it('refuses permanently, naming the rule but not the address, when any address is refused', async () => {
    const { err } = await lookUp(
      checkedLookup('hook', resolverOf(PUBLIC_V4, { address: '10.0.0.5', family: 4 })),
      'hooks.example.com',
      { all: true },
    );

    expect(err).toBeInstanceOf(PermanentDeliveryError);
    expect(err?.message).toBe(`hook: refused to connect: ${REFUSED_AT_DELIVERY}`);
    // What a name resolves to would tell the caller about Herald's network.
    expect(err?.message).not.toContain('10.0.0.5');
    expect(err?.message).not.toContain('hooks.example.com');
  });

  it('passes the resolver failure on as it is', async () => {
    const notFound = Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.example'), {
      code: 'ENOTFOUND',
    });

    const { err } = await lookUp(
      checkedLookup('hook', () => Promise.reject(notFound)),
      'nowhere.example',
      { all: true },
    );

    expect(err).toBe(notFound);
  });

  it('fails, not permanently, when the resolver gives no address', async () => {
    const { err } = await lookUp(checkedLookup('hook', resolverOf()), 'empty.example', {
      all: true,
    });

    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(PermanentDeliveryError);
  });
});

describe('createAddressGuard', () => {
  it.each(['http://127.0.0.1:9/', 'http://[::ffff:127.0.0.1]/', 'http://2130706433/'])(
    'refuses the IP literal of %s before any connection',
    async (url) => {
      const guard = createAddressGuard('hook', resolverOf(PUBLIC_V4));

      expect(() => guard.checkLiteral(new URL(url))).toThrow(PermanentDeliveryError);
      expect(() => guard.checkLiteral(new URL(url))).toThrow(/refused to connect: /);
      await guard.close();
    },
  );

  it("refuses this machine's own addresses, whatever their range", async () => {
    const own = Object.values(networkInterfaces())
      .flat()
      .map((a) => a?.address)
      .filter((a): a is string => a !== undefined && !a.startsWith('fe80'));
    const guard = createAddressGuard('hook', resolverOf(PUBLIC_V4));

    expect(own.length).toBeGreaterThan(0);
    for (const address of own) {
      const host = address.includes(':') ? `[${address}]` : address;
      expect(() => guard.checkLiteral(new URL(`http://${host}:9/`)), address).toThrow(
        PermanentDeliveryError,
      );
    }
    await guard.close();
  });

  it('lets public literals and host names through to the dispatcher', async () => {
    const guard = createAddressGuard('hook', resolverOf(PUBLIC_V4));

    expect(() => guard.checkLiteral(new URL('http://93.184.216.34/'))).not.toThrow();
    expect(() => guard.checkLiteral(new URL('http://localhost/'))).not.toThrow();
    await guard.close();
  });
});
