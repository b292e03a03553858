/** Where generations live in object storage: `s3://BUCKET/PREFIX`, pure parsing and key names. */

export interface StoreLocation {
  readonly bucket: string;
  /** No leading or trailing slash; may be empty (the bucket's root); may hold `{hostname}` until expanded. */
  readonly prefix: string;
}

export const STORE_URL_ALLOWED =
  's3://BUCKET/PREFIX with a bucket name of 3-63 lowercase letters, digits, dots and hyphens, and an optional prefix (only {hostname} may appear in braces)';

/** Pure: the location of an `s3://` URL, or undefined when it is not one stasis accepts. */
export function parseStoreUrl(text: string): StoreLocation | undefined {
  const match = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(text.trim());
  if (!match) return undefined;
  const bucket = match[1] as string;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes('..')) return undefined;
  const prefix = (match[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (/\/\//.test(prefix) || prefix.split('/').some((part) => part === '.' || part === '..')) return undefined;
  if (prefix.replaceAll('{hostname}', '').match(/[{}]/)) return undefined;
  return { bucket, prefix };
}

/** Pure: `{hostname}` in the prefix replaced by the host (pod) name. */
export function expandLocation(location: StoreLocation, hostname: string): StoreLocation {
  return { bucket: location.bucket, prefix: location.prefix.replaceAll('{hostname}', hostname) };
}

export function formatLocation(location: StoreLocation): string {
  return `s3://${location.bucket}/${location.prefix}`;
}

/** Pure: `PREFIX/name`, or `name` at the bucket's root. */
export function keyOf(location: StoreLocation, ...parts: readonly string[]): string {
  return [location.prefix, ...parts].filter((part) => part !== '').join('/');
}
