import { S3Client } from '@aws-sdk/client-s3';

export interface ClientSettings {
  /** STASIS_S3_ENDPOINT: a non-AWS server, addressed path-style */
  readonly endpoint: string | null;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/**
 * The S3 client: region from AWS_REGION (AWS_DEFAULT_REGION, us-east-1 for a custom
 * endpoint), credentials by the SDK's default chain (env vars, web identity as with
 * EKS IRSA, profile files, instance metadata).
 */
export function makeClient({ endpoint, env }: ClientSettings): S3Client {
  const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? (endpoint !== null ? 'us-east-1' : undefined);
  return new S3Client({
    ...(region === undefined ? {} : { region }),
    ...(endpoint === null ? {} : { endpoint, forcePathStyle: true }),
    // The default aws-chunked checksum trailers are refused by some S3-compatible servers
    // (Ceph RGW 16); stasis checks every object's sha256 itself.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
    // a server that stops answering must fail the transfer, not hang the dump
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 60_000 },
  });
}

interface ServiceError {
  readonly name?: string;
  readonly code?: string;
  readonly message?: string;
  readonly $metadata?: { readonly httpStatusCode?: number };
  readonly errors?: readonly ServiceError[];
}

/** Pure: an S3 or network failure in words an operator can act on. */
export function describeS3Error(error: unknown, where: { readonly bucket: string; readonly endpoint: string }): string {
  const e = (error ?? {}) as ServiceError;
  const name = e.name ?? '';
  const code = e.code ?? e.errors?.[0]?.code ?? '';
  const status = e.$metadata?.httpStatusCode;
  const message = e.message ?? String(error);
  if (name === 'NoSuchBucket') return `bucket ${where.bucket} does not exist at ${where.endpoint}`;
  if (['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken'].includes(name)) {
    return `the credentials were refused by ${where.endpoint} (${name}): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the pod's role`;
  }
  if (name === 'AccessDenied' || status === 403) return `access denied to bucket ${where.bucket} at ${where.endpoint} (${name || status}): the credentials lack permission`;
  if (name === 'CredentialsProviderError') return `no AWS credentials found (env vars, web identity token, profile files, instance metadata): ${message}`;
  if (['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNRESET', 'EPIPE'].includes(code) || /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ECONNRESET|socket hang up/.test(message)) {
    return `cannot reach the object store at ${where.endpoint} (${code || message})`;
  }
  if (name === 'TimeoutError' || name === 'RequestTimeout' || /timed? ?out/i.test(message)) return `the object store at ${where.endpoint} did not answer in time (${message})`;
  if (/Region is missing/i.test(message)) return 'no AWS region: set AWS_REGION (or STASIS_S3_ENDPOINT for a non-AWS store)';
  return `object store error at ${where.endpoint}: ${name && name !== 'Error' ? `${name}: ` : ''}${message}`;
}

/** The endpoint as logs name it. */
export function endpointName(endpoint: string | null, env: Readonly<Record<string, string | undefined>>): string {
  return endpoint ?? `AWS S3 (${env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'no region'})`;
}
