import { type Currency, assertCurrency, parseAmount, formatMoney } from './money.js';

// Products are priced by the relay; a kiosk maps its slots (buttons/spirals) to product SKUs.

export interface Product {
  readonly sku: string;
  readonly name: string;
  /** integer minor units */
  readonly price: number;
  readonly currency: Currency;
}

export interface CatalogInput {
  sku: string;
  name: string;
  /** decimal as the operator writes it: "1500.00" or 1500 */
  price: string | number;
  currency: string;
}

export class CatalogError extends Error {
  override name = 'CatalogError';
}

export class Catalog {
  private readonly bySku = new Map<string, Product>();

  constructor(products: readonly Product[]) {
    for (const p of products) {
      if (this.bySku.has(p.sku)) throw new CatalogError(`product sku "${p.sku}" is listed twice: keep one`);
      if (!Number.isSafeInteger(p.price) || p.price <= 0) {
        throw new CatalogError(`product "${p.sku}" has price ${p.price}: it must be a positive amount`);
      }
      this.bySku.set(p.sku, p);
    }
  }

  static fromInput(items: readonly CatalogInput[]): Catalog {
    return new Catalog(
      items.map((i) => {
        const currency = assertCurrency(i.currency);
        return { sku: i.sku, name: i.name, currency, price: parseAmount(i.price, currency) };
      }),
    );
  }

  get(sku: string): Product | undefined {
    return this.bySku.get(sku);
  }

  list(): Product[] {
    return [...this.bySku.values()];
  }

  describe(sku: string): string {
    const p = this.bySku.get(sku);
    return p ? `${p.name} ${formatMoney(p.price, p.currency)}` : `unknown product ${sku}`;
  }
}
