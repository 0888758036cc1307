/** RFC 3339 at second precision, as Kubernetes' metav1.Time marshals. */
export function timestamp(date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
