/**
 * Where the admin key lives while signed in: this tab's sessionStorage
 * (gone when the tab closes; never localStorage, a cookie or a URL).
 */

const SLOT = "gateway-admin-key";

/** The stored admin key, if any. */
export function storedKey(): string | null {
  try {
    return sessionStorage.getItem(SLOT);
  } catch {
    return null; // storage disabled: the user signs in again on reload
  }
}

/** Keeps the admin key for this tab. */
export function storeKey(key: string): void {
  try {
    sessionStorage.setItem(SLOT, key);
  } catch {
    // Storage disabled: the key stays in memory for this page only.
  }
}

/** Forgets the admin key. */
export function forgetKey(): void {
  try {
    sessionStorage.removeItem(SLOT);
  } catch {
    // nothing stored
  }
}
