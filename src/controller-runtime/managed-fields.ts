// What every cache may drop from the objects it keeps.

/**
 * Drops metadata.managedFields: server-side-apply bookkeeping the operator never reads, and in a heap
 * snapshot with 10,000 identities the largest share of the cached objects.
 */
export function withoutManagedFields<T extends { metadata?: object }>(obj: T): T {
  const meta = obj.metadata as { managedFields?: unknown } | undefined;
  if (meta?.managedFields) delete meta.managedFields;
  return obj;
}
