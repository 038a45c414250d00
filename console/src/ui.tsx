// Small pieces every page uses: the store hook, async actions with their error, messages.

import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import type { Store } from "./api";

/** The store's value, re-rendering on each change. */
export function useStore<T>(store: Store<T>): T {
  const [value, setValue] = useState(store.value);
  useEffect(() => store.subscribe(() => setValue(store.value)), [store]);
  return value;
}

/** Runs `action` on demand, tracking whether it runs and the words of its failure. */
export function useAction<A extends unknown[], R>(action: (...args: A) => Promise<R>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = useCallback(
    async (...args: A): Promise<R | undefined> => {
      setBusy(true);
      setError(null);
      try {
        return await action(...args);
      } catch (e) {
        setError(e instanceof Error ? e.message : String(e));
        return undefined;
      } finally {
        setBusy(false);
      }
    },
    [action],
  );
  return { run, busy, error, setError };
}

/** Loads data when `deps` change; `reload` loads again. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    load().then(
      (value) => live && (setData(value), setError(null)),
      (e: unknown) => live && setError(e instanceof Error ? e.message : String(e)),
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  return { data, error, reload: () => setTick((t) => t + 1) };
}

export function ErrorText({ error }: { error: string | null }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {error}
    </p>
  );
}

export function Section(props: { title: string; children: ComponentChildren; id?: string }) {
  return (
    <section class="card" aria-labelledby={props.id}>
      <h2 id={props.id}>{props.title}</h2>
      {props.children}
    </section>
  );
}

/** Previous and next page buttons over a list paged by `offset` and `size`, with a label. */
export function Pager(props: {
  offset: number;
  size: number;
  shown: number;
  onOffset: (offset: number) => void;
  label?: string;
  back?: string;
  forward?: string;
}) {
  return (
    <div class="row">
      <button
        type="button"
        class="secondary"
        disabled={props.offset === 0}
        onClick={() => props.onOffset(Math.max(0, props.offset - props.size))}
      >
        {props.back ?? "Previous"}
      </button>
      {props.label && <span>{props.label}</span>}
      <button
        type="button"
        class="secondary"
        disabled={props.shown < props.size}
        onClick={() => props.onOffset(props.offset + props.size)}
      >
        {props.forward ?? "Next"}
      </button>
    </div>
  );
}

export function formatTime(ms: number | null | undefined): string {
  if (!ms) return "—";
  return new Date(ms).toLocaleString();
}

export function round(value: unknown, digits = 1): string {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "—";
}
