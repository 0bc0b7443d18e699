// What every cache may drop from the objects it keeps.

/**
 * Drops metadata.managedFields: server-side-apply bookkeeping the operator never reads, and in a heap
 * snapshot with 10,000 identities the largest share of the cached objects. The metadata is rebuilt without
 * it rather than `delete`d from: a delete turns the object into a slow dictionary-mode object, which a heap
 * snapshot of the 2,000-identity wave showed at ~600 bytes per cached identity instead of ~150.
 */
export function withoutManagedFields<T extends { metadata?: object }>(obj: T): T {
  const meta = obj.metadata as { managedFields?: unknown } | undefined;
  if (meta && 'managedFields' in meta) {
    const { managedFields: _dropped, ...rest } = meta;
    (obj as { metadata?: object }).metadata = rest;
  }
  return obj;
}
