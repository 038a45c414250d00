// NeuroCluster Streamer: pick or name a stream, send points (CSV, JSON lines or a demo mixture)
// in batches, watch a PCA projection coloured by cluster with outliers marked, the clusters
// summary and the algorithm status over the session.
//
// Points go through `POST /api/v1/process_points` (one request per batch); the clusters summary
// and the status are polled after each batch and every few seconds. `PointFeed` is the seam for
// a live socket: a feed that pushes assignments calls the same `onAssigned`.

import { useEffect, useRef, useState } from "preact/hooks";
import { type Principal, call, can } from "../api";
import { ErrorText, Section, round, useAction, useLoad } from "../ui";

interface Assignment {
  cluster_id: number;
  is_outlier: boolean;
  outlier_score?: number;
}
interface ProcessAnswer {
  results: Assignment[];
  clusters_found: number;
  points_processed: number;
  processing_time_ms: number;
  algorithm_quality?: number;
  stream: string;
}
interface ClusterInfo {
  cluster_id: number;
  centroid: number[];
  health_score?: number;
  health_status?: string;
  confidence?: number;
  update_count?: number;
  size?: number;
}
interface AlgorithmStatus {
  clusters?: number;
  active_clusters?: number;
  clustering_quality?: number;
  points_processed?: number;
  total_points_processed?: number;
  last_processing_time_ms?: number;
  is_ready?: boolean;
  [key: string]: unknown;
}
interface Sample {
  at: number;
  quality: number;
  throughput: number;
  latency: number;
}

/** Sends batches and reports assignments; a socket feed can replace it with the same shape. */
interface PointFeed {
  send(stream: string, points: number[][]): Promise<ProcessAnswer>;
}

const httpFeed: PointFeed = {
  send: (stream, points) =>
    call<ProcessAnswer>("POST", "/api/v1/process_points", { json: { stream, points } }),
};

const BATCH = 250;
const MAX_PLOTTED = 5000;

/** A seeded generator, so the demo mixture is the same each time. */
function generator(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const gauss = () => Math.sqrt(-2 * Math.log(next() + 1e-12)) * Math.cos(2 * Math.PI * next());
  return { next, gauss };
}

/** Three Gaussian blobs in 4 dimensions, each along its own axis (NCS groups points by
 * direction: cosine similarity), plus a scattered point in every 50, in a fixed order. */
export function demoMixture(count: number, seed = 7): number[][] {
  const random = generator(seed);
  const centres = [
    [5, 0, 0, 0],
    [0, 5, 0, 0],
    [0, 0, 5, 0],
  ];
  const points: number[][] = [];
  for (let i = 0; i < count; i++) {
    if (i % 50 === 49) {
      points.push(centres[0].map(() => 5 * random.gauss()));
      continue;
    }
    const centre = centres[i % centres.length];
    points.push(centre.map((c) => c + 0.3 * random.gauss()));
  }
  return points;
}

/** Points from CSV (one point a line, numbers split by commas) or JSON lines (arrays). */
export function parsePoints(text: string): number[][] {
  const points: number[][] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    let values: unknown;
    if (line.startsWith("[")) {
      try {
        values = JSON.parse(line);
      } catch {
        throw new Error(`Line ${index + 1} is not a JSON array.`);
      }
    } else {
      values = line.split(/[,;\s]+/).filter(Boolean).map(Number);
    }
    if (!Array.isArray(values) || values.length === 0 || values.some((v) => typeof v !== "number" || !Number.isFinite(v))) {
      throw new Error(`Line ${index + 1} is not a list of finite numbers.`);
    }
    points.push(values as number[]);
  });
  if (points.length === 0) throw new Error("No points given.");
  return points;
}

/** The first two principal components of `points` (power iteration on the covariance). */
export function project(points: number[][]): [number, number][] {
  if (points.length === 0) return [];
  const d = points[0].length;
  const mean = new Array<number>(d).fill(0);
  for (const p of points) for (let j = 0; j < d; j++) mean[j] += p[j] / points.length;
  const centred = points.map((p) => p.map((v, j) => v - mean[j]));
  if (d === 1) return centred.map((p) => [p[0], 0]);
  const cov = Array.from({ length: d }, () => new Array<number>(d).fill(0));
  for (const p of centred) for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) cov[a][b] += p[a] * p[b];
  const components: number[][] = [];
  for (let k = 0; k < 2; k++) {
    let v = Array.from({ length: d }, (_, j) => 1 + j * 0.37 + k);
    for (let iter = 0; iter < 60; iter++) {
      const w = cov.map((row) => row.reduce((s, c, j) => s + c * v[j], 0));
      for (const u of components) {
        const dot = w.reduce((s, x, j) => s + x * u[j], 0);
        for (let j = 0; j < d; j++) w[j] -= dot * u[j];
      }
      const norm = Math.hypot(...w) || 1;
      v = w.map((x) => x / norm);
    }
    components.push(v);
  }
  return centred.map((p) => [
    p.reduce((s, x, j) => s + x * components[0][j], 0),
    p.reduce((s, x, j) => s + x * components[1][j], 0),
  ]);
}

const PALETTE = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#0891b2", "#db2777", "#65a30d", "#7c3aed"];

function Scatter({ points, assignments }: { points: number[][]; assignments: Assignment[] }) {
  const projected = project(points);
  if (projected.length === 0) return <p>No points yet.</p>;
  const xs = projected.map((p) => p[0]);
  const ys = projected.map((p) => p[1]);
  const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const size = 400;
  const pad = 10;
  const sx = (x: number) => pad + ((x - minX) / (maxX - minX || 1)) * (size - 2 * pad);
  const sy = (y: number) => size - pad - ((y - minY) / (maxY - minY || 1)) * (size - 2 * pad);
  const clusters = new Set(assignments.filter((a) => !a.is_outlier).map((a) => a.cluster_id));
  return (
    <figure>
      <svg class="scatter" viewBox={`0 0 ${size} ${size}`} role="img" aria-label={`Scatter of ${projected.length} points in ${clusters.size} clusters`}>
        {projected.map(([x, y], i) => {
          const a = assignments[i];
          if (!a) return null;
          if (a.is_outlier) {
            const cx = sx(x);
            const cy = sy(y);
            return (
              <path key={i} class="outlier" data-outlier="true" d={`M${cx - 4} ${cy - 4}L${cx + 4} ${cy + 4}M${cx - 4} ${cy + 4}L${cx + 4} ${cy - 4}`} />
            );
          }
          return (
            <circle
              key={i}
              class="point"
              data-cluster={a.cluster_id}
              cx={sx(x)}
              cy={sy(y)}
              r="2.5"
              fill={PALETTE[((a.cluster_id % PALETTE.length) + PALETTE.length) % PALETTE.length]}
            />
          );
        })}
      </svg>
      <figcaption>
        PCA projection of {projected.length} points: {clusters.size} clusters, {assignments.filter((a) => a.is_outlier).length} outliers (×).
      </figcaption>
    </figure>
  );
}

function Chart({ samples }: { samples: Sample[] }) {
  if (samples.length < 2) return <p>The chart starts after two batches.</p>;
  const width = 400;
  const height = 120;
  const line = (values: number[]) => {
    const max = Math.max(...values) || 1;
    return values
      .map((v, i) => `${(i / (values.length - 1)) * width},${height - (v / max) * (height - 10) - 5}`)
      .join(" ");
  };
  return (
    <figure>
      <svg class="chart" viewBox={`0 0 ${width} ${height}`} role="img" aria-label="Quality, throughput and latency per batch">
        <polyline class="series quality" points={line(samples.map((s) => s.quality))} />
        <polyline class="series throughput" points={line(samples.map((s) => s.throughput))} />
        <polyline class="series latency" points={line(samples.map((s) => s.latency))} />
      </svg>
      <figcaption>
        <span class="key quality">quality</span> <span class="key throughput">throughput</span>{" "}
        <span class="key latency">latency</span> per batch, each scaled to its maximum.
      </figcaption>
    </figure>
  );
}

function percentile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

export function NcsPage({ principal }: { principal: Principal }) {
  const canWrite = can(principal, "clusters:write");
  const [stream, setStream] = useState("console-demo");
  const [input, setInput] = useState("");
  const [points, setPoints] = useState<number[][]>([]);
  const [assignments, setAssignments] = useState<Assignment[]>([]);
  const [samples, setSamples] = useState<Sample[]>([]);
  const [progress, setProgress] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  const feed = useRef<PointFeed>(httpFeed);

  const streams = useLoad(() => call<{ streams: { stream: string; jobs_saved: number }[] }>("GET", "/api/v1/streams"), [tick]);
  // A stream exists once it has taken points: only then are its summary and status asked for.
  const known = assignments.length > 0 || (streams.data?.streams ?? []).some((s) => s.stream === stream);
  const summary = useLoad(
    async () =>
      known
        ? call<{ clusters_info: ClusterInfo[] }>("GET", "/api/v1/clusters_summary", { query: { stream } })
        : { clusters_info: [] },
    [stream, tick, known],
  );
  const status = useLoad(
    async (): Promise<AlgorithmStatus> =>
      known ? call<AlgorithmStatus>("GET", "/api/v1/algorithm_status", { query: { stream } }) : {},
    [stream, tick, known],
  );
  useEffect(() => {
    const timer = window.setInterval(() => setTick((t) => t + 1), 5000);
    return () => window.clearInterval(timer);
  }, []);

  const sendAll = useAction(async (all: number[][]) => {
    for (let start = 0; start < all.length; start += BATCH) {
      const batch = all.slice(start, start + BATCH);
      setProgress(`Sending points ${start + 1}–${start + batch.length} of ${all.length}…`);
      const began = performance.now();
      const answer = await feed.current.send(stream, batch);
      const latency = performance.now() - began;
      setPoints((p) => [...p, ...batch].slice(-MAX_PLOTTED));
      setAssignments((a) => [...a, ...answer.results].slice(-MAX_PLOTTED));
      setSamples((s) => [
        ...s,
        {
          at: Date.now(),
          quality: answer.algorithm_quality ?? 0,
          throughput: batch.length / Math.max(answer.processing_time_ms, 0.001) * 1000,
          latency,
        },
      ]);
    }
    setProgress(`Sent ${all.length} points.`);
    setTick((t) => t + 1);
  });

  const latencies = samples.map((s) => s.latency);
  return (
    <div class="grid">
      <Section title="Stream" id="stream-title">
        <label>
          Stream name
          <input
            name="stream"
            list="known-streams"
            value={stream}
            maxLength={100}
            onInput={(e) => {
              setStream(e.currentTarget.value);
              setPoints([]);
              setAssignments([]);
              setSamples([]);
            }}
          />
        </label>
        <datalist id="known-streams">
          {(streams.data?.streams ?? []).map((s) => (
            <option key={s.stream} value={s.stream} />
          ))}
        </datalist>
        {canWrite && (
          <form
            onSubmit={(e) => {
              e.preventDefault();
              try {
                void sendAll.run(parsePoints(input));
              } catch (error) {
                sendAll.setError(error instanceof Error ? error.message : String(error));
              }
            }}
          >
            <label>
              Points (CSV, or one JSON array a line)
              <textarea
                name="points"
                rows={5}
                value={input}
                placeholder={"0.1, 0.2, 0.3\n[1.5, 2.5, 3.5]"}
                onInput={(e) => setInput(e.currentTarget.value)}
              />
            </label>
            <div class="row">
              <button type="submit" disabled={sendAll.busy || !input.trim()}>
                Send points
              </button>
              <button type="button" class="secondary" disabled={sendAll.busy} onClick={() => void sendAll.run(demoMixture(1000))}>
                Send a demo mixture
              </button>
            </div>
          </form>
        )}
        {progress && <p aria-live="polite">{progress}</p>}
        <ErrorText error={sendAll.error} />
      </Section>
      <Section title="Projection" id="projection-title">
        <Scatter points={points} assignments={assignments} />
      </Section>
      <Section title="Clusters" id="clusters-title">
        <ErrorText error={summary.error} />
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Cluster</th>
                <th scope="col">Health</th>
                <th scope="col">Score</th>
                <th scope="col">Updates</th>
              </tr>
            </thead>
            <tbody>
              {(summary.data?.clusters_info ?? []).map((c) => (
                <tr key={c.cluster_id}>
                  <td>{c.cluster_id}</td>
                  <td>{c.health_status ?? "—"}</td>
                  <td>{round(c.health_score, 2)}</td>
                  <td>{c.update_count ?? c.size ?? "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </Section>
      <Section title="Algorithm status" id="status-title">
        <ErrorText error={status.error} />
        <dl class="numbers">
          <dt>Clusters</dt>
          <dd>{status.data?.active_clusters ?? status.data?.clusters ?? "—"}</dd>
          <dt>Quality</dt>
          <dd>{round(status.data?.clustering_quality, 3)}</dd>
          <dt>Points processed</dt>
          <dd>{status.data?.total_points_processed ?? status.data?.points_processed ?? "—"}</dd>
          <dt>Last batch</dt>
          <dd>{round(status.data?.last_processing_time_ms, 1)} ms</dd>
          <dt>Latency p50 / p95 (this session)</dt>
          <dd>
            {round(percentile(latencies, 0.5), 0)} / {round(percentile(latencies, 0.95), 0)} ms
          </dd>
          <dt>Throughput (last batch)</dt>
          <dd>{round(samples[samples.length - 1]?.throughput, 0)} points/s</dd>
        </dl>
        <Chart samples={samples} />
      </Section>
    </div>
  );
}
