import { describe, expect, it } from 'vitest';
import { IllegalTransition } from '../src/core/state-machine.js';
import { vendSession } from '../src/core/vend-session.js';
import { relayOrder } from '../src/core/relay-order.js';
import { refundEventOf, refundMachine, refundNeedsPerson, refundSettles, REFUND_STATES } from '../src/core/refund.js';
import { Catalog, CatalogError } from '../src/core/catalog.js';

describe('vend session machine', () => {
  it('walks the happy path', () => {
    let s = vendSession.next('awaiting_payment', 'paid');
    s = vendSession.next(s, 'start_dispense');
    expect(vendSession.next(s, 'drop_seen')).toBe('dispensed');
    expect(vendSession.isTerminal('dispensed')).toBe(true);
  });

  it('never dispenses without payment and never pulses again after a crash', () => {
    expect(() => vendSession.next('awaiting_payment', 'start_dispense')).toThrow(IllegalTransition);
    expect(vendSession.next('dispensing', 'crash_recovered')).toBe('vend_unknown');
    expect(vendSession.can('vend_unknown', 'start_dispense')).toBe(false);
    expect(() => vendSession.next('cancelled', 'paid')).toThrow(/event "paid" is not allowed in state "cancelled"/);
  });
});

describe('relay order machine', () => {
  it('releases only pending orders and refunds late payments', () => {
    expect(relayOrder.next('pending', 'payment_verified')).toBe('paid');
    expect(() => relayOrder.next('expired', 'payment_verified')).toThrow(IllegalTransition);
    expect(relayOrder.next('expired', 'late_payment')).toBe('refunding');
    expect(relayOrder.next('paid', 'vend_failed')).toBe('refunding');
    expect(relayOrder.next('refunding', 'refund_done')).toBe('refunded');
    expect(relayOrder.can('refunded', 'refund_done')).toBe(false);
  });

  it('starts through the table too: an order is created pending or rejected, never back to new', () => {
    expect(relayOrder.next('new', 'created')).toBe('pending');
    expect(relayOrder.next('new', 'rejected')).toBe('rejected');
    expect(() => relayOrder.next('new', 'payment_verified')).toThrow(IllegalTransition);
    expect(() => relayOrder.next('pending', 'created')).toThrow(IllegalTransition);
    expect(relayOrder.isTerminal('rejected')).toBe(true);
  });
});

describe('refund machine', () => {
  it("moves an intent by Mercado Pago's answer, once", () => {
    expect(refundMachine.next('requested', refundEventOf('approved'))).toBe('approved');
    expect(refundMachine.next('requested', refundEventOf('in_process'))).toBe('in_process');
    expect(refundMachine.next('in_process', refundEventOf('approved'))).toBe('approved');
    expect(refundMachine.next('requested', refundEventOf('authorized'))).toBe('in_process');
    expect(refundMachine.next('requested', 'refused')).toBe('failed');
    expect(() => refundMachine.next('approved', 'mp_rejected')).toThrow(IllegalTransition);
    expect(() => refundMachine.next('failed', 'mp_approved')).toThrow(IllegalTransition);
    expect(() => refundMachine.next('external', 'refused')).toThrow(IllegalTransition);
  });

  it('says in one table which states settle a payment and which need a person', () => {
    const settles = Object.keys(REFUND_STATES).filter(refundSettles).sort();
    const person = Object.keys(REFUND_STATES).filter(refundNeedsPerson).sort();
    expect(settles).toEqual(['approved', 'external', 'in_process']);
    expect(person).toEqual(['cancelled', 'failed', 'rejected']);
    expect(refundSettles('requested') || refundNeedsPerson('requested')).toBe(false);
  });
});

describe('catalog', () => {
  it('prices in minor units and refuses duplicates and zero prices', () => {
    const c = Catalog.fromInput([{ sku: 'COLA', name: 'Cola', price: '1500.00', currency: 'ARS' }]);
    expect(c.get('COLA')?.price).toBe(150000);
    expect(() =>
      Catalog.fromInput([
        { sku: 'A', name: 'a', price: 1, currency: 'ARS' },
        { sku: 'A', name: 'b', price: 2, currency: 'ARS' },
      ]),
    ).toThrow(CatalogError);
    expect(() => Catalog.fromInput([{ sku: 'Z', name: 'z', price: 0, currency: 'CLP' }])).toThrow(/positive/);
  });
});
