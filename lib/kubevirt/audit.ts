/**
 * The audit seam of run and cleanup: they report plain records to an {@linkcode Auditor}. The one
 * interface both executables use lives in `lib/audit`; this module re-exports it for virtwork's
 * callers. {@linkcode noopAuditor} is the default. Records never carry credentials, only whether
 * SSH access was configured.
 * @module
 */
export { noopAuditor } from "../audit/types.ts";
export type {
  Auditor,
  AuditStatus,
  AuditTool,
  CleanupRecord,
  CleanupStartRecord,
  DeletionRecord,
  EventRecord,
  ObjectRecord,
  OperationEndRecord,
  OperationStartRecord,
  RunEndRecord,
  RunStartRecord,
  VmRecord,
  WorkloadRecord,
} from "../audit/types.ts";
