/**
 * A test's list of cleanups: each `add`s what it must undo as soon as it has something to undo;
 * `runAll()` (from an afterEach) undoes it all, newest first.
 */

export type Cleanup = () => void | Promise<void>;

export interface Cleanups {
  add(cleanup: Cleanup): void;
  /**
   * Runs every cleanup added so far, newest first, even when an earlier one fails; then rejects
   * with the first failure, if any. The list is empty afterwards.
   */
  runAll(): Promise<void>;
}

export function createCleanups(): Cleanups {
  const cleanups: Cleanup[] = [];
  return {
    add: (cleanup) => {
      cleanups.push(cleanup);
    },
    async runAll() {
      const failures: unknown[] = [];
      for (const cleanup of cleanups.splice(0).reverse()) {
        try {
          await cleanup();
        } catch (err) {
          failures.push(err);
        }
      }
      if (failures.length > 0) throw failures[0];
    },
  };
}
