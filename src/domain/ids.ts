/**
 * UUIDv7 ids: 48 bits of Unix milliseconds, then randomness, so ids sort by creation time.
 * Ids made by one process are strictly increasing (RFC 9562 §6.2, method 1: a 12-bit counter
 * in rand_a, seeded randomly each millisecond).
 */
let lastMs = -1;
let counter = 0;

/** Two lower-case hex digits for every byte value. */
const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));
/** Scratch space for one id: ids are built synchronously, one at a time. */
const scratch = new Uint8Array(16);

export function uuidv7(
  now: number = Date.now(),
  random: (bytes: Uint8Array<ArrayBuffer>) => void = fill,
): string {
  const bytes = scratch;
  random(bytes);
  if (now > lastMs) {
    lastMs = now;
    counter = ((bytes[6]! & 0x07) << 8) | bytes[7]!; // leave headroom before the counter wraps
  } else {
    counter += 1;
    if (counter > 0xfff) {
      lastMs += 1; // borrow the next millisecond rather than repeat or go backwards
      counter = 0;
    }
  }
  const ms = lastMs;
  bytes[0] = Math.floor(ms / 2 ** 40) & 0xff;
  bytes[1] = Math.floor(ms / 2 ** 32) & 0xff;
  bytes[2] = (ms >>> 24) & 0xff;
  bytes[3] = (ms >>> 16) & 0xff;
  bytes[4] = (ms >>> 8) & 0xff;
  bytes[5] = ms & 0xff;
  bytes[6] = 0x70 | (counter >>> 8);
  bytes[7] = counter & 0xff;
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  let id = '';
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) id += '-';
    id += HEX[bytes[i]!]!;
  }
  return id;
}

/**
 * Random bytes drawn from a pool refilled 4 KiB at a time: one call into the CSPRNG per 256 ids
 * instead of one per id (a measurable share of a Send's CPU otherwise).
 */
const pool = new Uint8Array(4096);
let poolOffset = pool.length;

function fill(bytes: Uint8Array<ArrayBuffer>): void {
  if (poolOffset + bytes.length > pool.length) {
    globalThis.crypto.getRandomValues(pool);
    poolOffset = 0;
  }
  bytes.set(pool.subarray(poolOffset, poolOffset + bytes.length));
  poolOffset += bytes.length;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(s: string): boolean {
  return UUID.test(s);
}
