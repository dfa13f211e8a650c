// What the relay's workers tell the metrics, as calls rather than metric objects, so the order
// service, the notification worker and the refund worker do not depend on prom-client. Every hook
// is optional in their options: a worker built without one (tests, tools) behaves the same.

/** how a refund attempt of one payment ended */
export type RefundOutcome =
  | 'refunded' // Mercado Pago made the refund (now, or on an earlier try with the same key)
  | 'refused' // Mercado Pago refused it for good, or the refund ended rejected: a person must act
  | 'retry' // no answer, 5xx, 429, 409: repeated later with the same idempotency key
  | 'external'; // refunded outside the relay (by hand in the panel)

export interface RelayObserver {
  /** a stored notification was processed (not given up): seconds since it was handed to the worker */
  notificationProcessed(seconds: number): void;
  /** the kiosk reported the vend of a paid order: seconds from `paid` to the result */
  vendReported(result: 'vended' | 'vend_failed', seconds: number): void;
  refundAttempted(outcome: RefundOutcome): void;
}
