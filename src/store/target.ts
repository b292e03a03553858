import { createHash, randomBytes } from 'node:crypto';
import type { Coding } from './codec.js';
import type { StoreLocation } from './location.js';
import type { Bucket } from './objects.js';

/** One prefix of one bucket, as a dump or a restore uses it. */
export interface StoreTarget {
  readonly bucket: Bucket;
  /** `{hostname}` already expanded */
  readonly location: StoreLocation;
  /** for messages: the endpoint URL or "AWS S3 (region)" */
  readonly endpoint: string;
  /** random per stasis start: the part of generation names that keeps writers apart */
  readonly writer: string;
  readonly coding: Coding;
  /** recorded in manifests: tells a wrong key from a damaged object; null = not encrypted */
  readonly keyCheck: string | null;
  /** STASIS_STORE_TEMPLATE: never written, nothing quarantined */
  readonly readOnly: boolean;
}

export function newWriter(): string {
  return randomBytes(4).toString('hex');
}

/** Pure: a short fingerprint of an encryption key (not the key: a hash of it with a fixed label). */
export function keyCheckOf(key: Buffer | null): string | null {
  return key === null ? null : createHash('sha256').update('stasis key check\n').update(key).digest('hex').slice(0, 16);
}
