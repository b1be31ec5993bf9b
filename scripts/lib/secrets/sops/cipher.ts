import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { GoTime, parseGoBool, parseGoFloat, parseGoInt, parseRfc3339 } from './go-values.ts';
import { macBytes } from './mac.ts';
import { Comment, type Scalar } from './tree.ts';

/**
 * sops's `aes/cipher.go`: every value is AES-256-GCM with a 32-byte IV, the key path as AAD,
 * and a `type:` telling how the plaintext bytes are read back.
 */
// sops's pattern is `(.+)` in each place; base64 has no comma and a type no `]`, so these match the
// same values, and they cannot backtrack over a megabyte of garbage once for every comma in it.
const ENC_PATTERN = /^ENC\[AES256_GCM,data:([^,]+),iv:([^,]+),tag:([^,]+),type:([^\]]+)\]/;
const OTHER_CIPHER = /^ENC\[([A-Za-z0-9_-]{1,32}),/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const IV_BYTES = 32;
const TAG_BYTES = 16;

type EncType = 'str' | 'int' | 'float' | 'bool' | 'time' | 'bytes' | 'comment';

export interface EncValue {
  data: Buffer;
  iv: Buffer;
  tag: Buffer;
  type: string;
}

/** Why a value could not be used; the caller adds the file and key path. */
export class CipherError extends Error {
  constructor(
    message: string,
    readonly reason: 'malformed' | 'auth' | 'type' | 'cipher',
  ) {
    super(message);
  }
}

export function parseEnc(value: string): EncValue {
  const m = ENC_PATTERN.exec(value);
  if (!m) {
    const cipher = OTHER_CIPHER.exec(value)?.[1];
    if (cipher && cipher !== 'AES256_GCM') {
      throw new CipherError(
        `is encrypted with the unsupported SOPS cipher ${cipher} (only AES256_GCM is known)`,
        'cipher',
      );
    }
    throw new CipherError('is not an ENC[AES256_GCM,…] value', 'malformed');
  }
  const [, data = '', iv = '', tag = '', type = ''] = m;
  for (const [name, b64] of [
    ['data', data],
    ['iv', iv],
    ['tag', tag],
  ] as const) {
    if (!BASE64.test(b64)) throw new CipherError(`has an ${name} field that is not base64`, 'malformed');
  }
  const parsed = {
    data: Buffer.from(data, 'base64'),
    iv: Buffer.from(iv, 'base64'),
    tag: Buffer.from(tag, 'base64'),
    type,
  };
  if (parsed.iv.length === 0 || parsed.tag.length !== TAG_BYTES) {
    throw new CipherError('has an iv or tag of the wrong length', 'malformed');
  }
  return parsed;
}

export function formatEnc(v: EncValue): string {
  return `ENC[AES256_GCM,data:${v.data.toString('base64')},iv:${v.iv.toString('base64')},tag:${v.tag.toString('base64')},type:${v.type}]`;
}

function open(key: Uint8Array, enc: EncValue, aad: string): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, enc.iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(enc.tag);
  try {
    return Buffer.concat([decipher.update(enc.data), decipher.final()]);
  } catch {
    throw new CipherError('does not decrypt', 'auth');
  }
}

export interface Decrypted {
  value: Exclude<Scalar, null> | Comment;
  /** What the MAC hashes: the plaintext bytes for str/bytes, Go's canonical text otherwise. */
  mac: Uint8Array;
}

/** `Cipher.Decrypt`: an empty string stays empty; anything else must be a valid ENC value. */
export function decryptValue(key: Uint8Array, ciphertext: string, aad: string): Decrypted {
  if (ciphertext === '') return { value: '', mac: new Uint8Array() };
  const enc = parseEnc(ciphertext);
  const plain = open(key, enc, aad);
  const text = plain.toString('utf8');
  let value: Decrypted['value'] | undefined;
  switch (enc.type) {
    case 'str':
    case 'bytes':
      return { value: text, mac: plain };
    case 'int':
      value = parseGoInt(text);
      break;
    case 'float':
      value = parseGoFloat(text);
      break;
    case 'bool':
      value = parseGoBool(text);
      break;
    case 'time':
      value = parseRfc3339(text);
      break;
    case 'comment':
      return { value: new Comment(text), mac: new Uint8Array() };
    default:
      throw new CipherError(
        /^[A-Za-z0-9_]{1,16}$/.test(enc.type) ? `has the unknown type "${enc.type}"` : 'has an unknown type',
        'type',
      );
  }
  if (value === undefined)
    throw new CipherError(`decrypts to something that is not a valid ${enc.type}`, 'type');
  return { value, mac: macBytes(value) };
}

function typeOf(value: Exclude<Scalar, null> | Comment): EncType {
  if (value instanceof Comment) return 'comment';
  if (value instanceof GoTime) return 'time';
  if (typeof value === 'bigint') return 'int';
  if (typeof value === 'number') return 'float';
  if (typeof value === 'boolean') return 'bool';
  return 'str';
}

/** `Cipher.Encrypt`: a fresh random 32-byte IV per value; an empty string is left empty. */
export function encryptValue(key: Uint8Array, value: Exclude<Scalar, null> | Comment, aad: string): string {
  const plain = value instanceof Comment ? Buffer.from(value.value, 'utf8') : macBytes(value);
  if (plain.length === 0 && typeof value === 'string') return '';
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const data = Buffer.concat([cipher.update(plain), cipher.final()]);
  return formatEnc({ data, iv, tag: cipher.getAuthTag(), type: typeOf(value) });
}
