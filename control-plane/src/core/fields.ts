/**
 * Field checks shared by the validators of core/ (events, ACME challenges): each throws an
 * ApiError naming the field, so every front end refuses the same input the same way.
 */
import { ApiError, invalidField } from '../errors.js';

export type Json = Record<string, unknown>;

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

export function object(value: unknown, field: string, allowed: readonly string[]): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidField(field, `must be an object, got ${describe(value)}`);
  }
  const obj = value as Json;
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      const where = field === 'body' ? key : `${field}.${key}`;
      throw new ApiError('UNKNOWN_FIELD', `${where}: unknown field (allowed: ${allowed.join(', ')})`, where);
    }
  }
  return obj;
}

export function string(value: unknown, field: string, max: number): string {
  if (typeof value !== 'string') throw invalidField(field, `must be a string, got ${describe(value)}`);
  if (value.length === 0 || value.length > max) throw invalidField(field, `must be 1 to ${max} characters`);
  return value;
}

export function integer(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw invalidField(field, `must be an integer from ${min} to ${max}`);
  }
  return value;
}

export function boolean(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') throw invalidField(field, `must be true or false, got ${describe(value)}`);
  return value;
}

export function array(value: unknown, field: string, min: number, max: number): unknown[] {
  if (!Array.isArray(value)) throw invalidField(field, `must be an array, got ${describe(value)}`);
  if (value.length < min || value.length > max) throw invalidField(field, `must hold ${min} to ${max} items, got ${value.length}`);
  return value;
}
