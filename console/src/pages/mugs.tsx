// Mug Positioning: choose or take a photo, upload it, see each mug's box, position and offset
// drawn over it, the verdict, violations, feedback and suggested moves; history of analyses.

import { useState } from "preact/hooks";
import { type Principal, call, can } from "../api";
import { ErrorText, Pager, Section, formatTime, round, useAction, useLoad } from "../ui";

interface Point {
  x: number;
  y: number;
}
interface Detection {
  bbox: { top_left: Point; bottom_right: Point; confidence: number };
  class_name: string;
}
interface Positioning {
  detection_index: number;
  position_key: string;
  center: Point;
  reference: Point;
  offset_px: Point;
  offset_mm?: Point;
  distance_px: number;
  distance_mm?: number;
}
interface Violation {
  rule_id: string;
  name?: string;
  priority: number;
  mug_index: number;
  actions: { action: string; message?: string }[];
}
interface Suggestion {
  action: string;
  message?: string;
  mug_index?: number;
}
export interface Analysis {
  id: string;
  status: "pending" | "processing" | "completed" | "failed";
  created_at_ms?: number;
  image?: { width: number; height: number; content_type: string; bytes: number };
  error?: { code: string; detail: string } | null;
  detections?: Detection[];
  positioning?: Positioning[];
  mug_count?: number;
  rule_violations?: Violation[];
  verdict?: string;
  feedback?: string[];
  suggestions?: Suggestion[];
  user_feedback?: { correct: boolean; actual_mug_count?: number } | null;
  processing_time_ms?: number;
}

function readAsDataUrl(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error ?? new Error("the file could not be read"));
    reader.readAsDataURL(file);
  });
}

/** Waits for an analysis to finish (long polls of up to 20 s). */
async function settle(analysis: Analysis): Promise<Analysis> {
  let current = analysis;
  for (let i = 0; i < 6 && (current.status === "pending" || current.status === "processing"); i++) {
    current = await call<Analysis>("GET", `/api/v1/analysis/${current.id}`, { query: { wait: 20 } });
  }
  return current;
}

/** The photo (or a blank frame of its size) with each mug's box, centre, key and offset. */
export function AnalysisPicture({ analysis, photo }: { analysis: Analysis; photo: string | null }) {
  const width = analysis.image?.width ?? 640;
  const height = analysis.image?.height ?? 480;
  const scale = Math.max(width, height) / 400;
  const font = 12 * scale;
  const reference = analysis.positioning?.[0]?.reference;
  return (
    <svg
      class="picture"
      viewBox={`0 0 ${width} ${height}`}
      role="img"
      aria-label={`Photo with ${analysis.detections?.length ?? 0} detected mugs`}
    >
      {photo ? (
        <image href={photo} x="0" y="0" width={width} height={height} />
      ) : (
        <rect x="0" y="0" width={width} height={height} class="blank" />
      )}
      {reference && (
        <g class="reference">
          <line x1={reference.x - 8 * scale} y1={reference.y} x2={reference.x + 8 * scale} y2={reference.y} />
          <line x1={reference.x} y1={reference.y - 8 * scale} x2={reference.x} y2={reference.y + 8 * scale} />
        </g>
      )}
      {(analysis.detections ?? []).map((detection, index) => {
        const { top_left: a, bottom_right: b } = detection.bbox;
        const position = analysis.positioning?.find((p) => p.detection_index === index);
        const offset = position?.offset_mm
          ? `${round(position.offset_mm.x, 0)}, ${round(position.offset_mm.y, 0)} mm`
          : position
            ? `${round(position.offset_px.x, 0)}, ${round(position.offset_px.y, 0)} px`
            : "";
        const flagged = analysis.rule_violations?.some((v) => v.mug_index === index);
        return (
          <g key={index} class={flagged ? "mug flagged" : "mug"} data-mug={index}>
            <rect
              class="box"
              x={a.x}
              y={a.y}
              width={b.x - a.x}
              height={b.y - a.y}
              stroke-width={2 * scale}
            />
            {position && (
              <>
                <circle cx={position.center.x} cy={position.center.y} r={3 * scale} />
                {reference && (
                  <line
                    class="offset"
                    x1={reference.x}
                    y1={reference.y}
                    x2={position.center.x}
                    y2={position.center.y}
                    stroke-width={scale}
                  />
                )}
              </>
            )}
            <text x={a.x + 2 * scale} y={Math.max(font, a.y - 3 * scale)} font-size={font}>
              {`${index + 1}: ${position?.position_key ?? detection.class_name}`}
            </text>
            {offset && (
              <text x={a.x + 2 * scale} y={b.y + font} font-size={font}>
                {offset}
              </text>
            )}
          </g>
        );
      })}
    </svg>
  );
}

function FeedbackButtons({ analysis, onDone }: { analysis: Analysis; onDone: (a: Analysis) => void }) {
  const [count, setCount] = useState("");
  const send = useAction(async (correct: boolean) => {
    const json: Record<string, unknown> = { correct };
    if (!correct && count !== "") json.actual_mug_count = Number(count);
    onDone(await call<Analysis>("POST", `/api/v1/analysis/${analysis.id}/feedback`, { json }));
  });
  if (analysis.user_feedback) {
    return (
      <p class="notice">
        Your feedback: {analysis.user_feedback.correct ? "right" : "wrong"}
        {analysis.user_feedback.actual_mug_count !== undefined &&
          ` (actual count ${analysis.user_feedback.actual_mug_count})`}
        .
      </p>
    );
  }
  return (
    <div class="row" role="group" aria-label="Was this analysis right?">
      <button type="button" onClick={() => void send.run(true)} disabled={send.busy}>
        Right
      </button>
      <label class="inline">
        Actual mug count
        <input
          type="number"
          min="0"
          max="100"
          value={count}
          onInput={(e) => setCount(e.currentTarget.value)}
        />
      </label>
      <button type="button" class="secondary" onClick={() => void send.run(false)} disabled={send.busy}>
        Wrong
      </button>
      <ErrorText error={send.error} />
    </div>
  );
}

/** The verdict, violations, feedback sentences and suggested moves of a finished analysis. */
export function AnalysisResult(props: {
  analysis: Analysis;
  photo: string | null;
  canFeedback: boolean;
  onChange: (a: Analysis) => void;
}) {
  const { analysis } = props;
  if (analysis.status === "failed") {
    return (
      <p class="error" role="alert">
        The analysis failed: {analysis.error?.detail ?? analysis.error?.code ?? "unknown reason"}.
      </p>
    );
  }
  if (analysis.status !== "completed") {
    return <p class="notice">The analysis is {analysis.status}…</p>;
  }
  return (
    <div class="result" data-analysis={analysis.id}>
      <AnalysisPicture analysis={analysis} photo={props.photo} />
      <p>
        <span class={`verdict verdict-${analysis.verdict}`} data-verdict={analysis.verdict}>
          {analysis.verdict}
        </span>{" "}
        {analysis.mug_count} mug{analysis.mug_count === 1 ? "" : "s"} found in{" "}
        {round(analysis.processing_time_ms, 0)} ms.
      </p>
      {!!analysis.rule_violations?.length && (
        <>
          <h3>Rule violations</h3>
          <ul class="violations">
            {analysis.rule_violations.map((v, i) => (
              <li key={i}>
                Mug {v.mug_index + 1}: {v.name ?? v.rule_id} —{" "}
                {v.actions.map((a) => `${a.action}${a.message ? `: ${a.message}` : ""}`).join("; ")}
              </li>
            ))}
          </ul>
        </>
      )}
      {!!analysis.feedback?.length && (
        <>
          <h3>Feedback</h3>
          <ul>
            {analysis.feedback.map((line, i) => (
              <li key={i}>{line}</li>
            ))}
          </ul>
        </>
      )}
      {!!analysis.suggestions?.length && (
        <>
          <h3>Suggested moves</h3>
          <ul>
            {analysis.suggestions.map((s, i) => (
              <li key={i}>{s.message ?? s.action}</li>
            ))}
          </ul>
        </>
      )}
      {props.canFeedback && <FeedbackButtons analysis={analysis} onDone={props.onChange} />}
    </div>
  );
}

function Upload({ onAnalysis }: { onAnalysis: (a: Analysis, photo: string) => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [calibration, setCalibration] = useState("");
  const [threshold, setThreshold] = useState("0.25");
  const [context, setContext] = useState("");
  const [dragging, setDragging] = useState(false);
  const upload = useAction(async () => {
    if (!file) throw new Error("Choose a photo first.");
    const photo = await readAsDataUrl(file);
    const form = new FormData();
    form.set("image", file, file.name || "photo");
    form.set("confidence_threshold", threshold);
    if (calibration) form.set("calibration_mm_per_pixel", calibration);
    if (context) form.set("rules_context", context);
    const first = await call<Analysis>("POST", "/api/v1/analysis", { form, query: { wait: 30 } });
    onAnalysis(await settle(first), photo);
  });
  const pick = (files: FileList | null) => {
    const chosen = files?.[0];
    if (chosen) setFile(chosen);
  };
  return (
    <form
      class="upload"
      onSubmit={(e) => {
        e.preventDefault();
        void upload.run();
      }}
    >
      <div
        class={dragging ? "drop dragging" : "drop"}
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(e) => {
          e.preventDefault();
          setDragging(false);
          pick(e.dataTransfer?.files ?? null);
        }}
      >
        <p>Drop a photo here, or</p>
        <div class="row">
          <label class="button">
            Choose a photo
            <input
              class="visually-hidden"
              type="file"
              name="image"
              accept="image/*"
              onChange={(e) => pick(e.currentTarget.files)}
            />
          </label>
          <label class="button secondary">
            Take a photo
            <input
              class="visually-hidden"
              type="file"
              name="camera"
              accept="image/*"
              capture="environment"
              onChange={(e) => pick(e.currentTarget.files)}
            />
          </label>
        </div>
        <p class="file-name">{file ? `${file.name} (${Math.round(file.size / 1024)} KiB)` : "No photo chosen."}</p>
      </div>
      <div class="fields">
        <label>
          Calibration (mm per pixel, optional)
          <input
            type="number"
            step="any"
            min="0"
            name="calibration"
            value={calibration}
            onInput={(e) => setCalibration(e.currentTarget.value)}
          />
        </label>
        <label>
          Confidence threshold
          <input
            type="number"
            step="0.05"
            min="0"
            max="1"
            name="threshold"
            value={threshold}
            onInput={(e) => setThreshold(e.currentTarget.value)}
          />
        </label>
        <label>
          Rules context (optional)
          <input name="context" value={context} onInput={(e) => setContext(e.currentTarget.value)} />
        </label>
      </div>
      <ErrorText error={upload.error} />
      <button type="submit" disabled={upload.busy || !file}>
        {upload.busy ? "Analysing…" : "Upload and analyse"}
      </button>
    </form>
  );
}

function History(props: { version: number; onOpen: (a: Analysis) => void }) {
  const [offset, setOffset] = useState(0);
  const limit = 10;
  const list = useLoad(
    () => call<{ analyses: Analysis[]; total?: number }>("GET", "/api/v1/analysis", { query: { limit, offset } }),
    [offset, props.version],
  );
  return (
    <>
      <ErrorText error={list.error} />
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Status</th>
              <th scope="col">Mugs</th>
              <th scope="col">Verdict</th>
              <th scope="col">
                <span class="visually-hidden">Open</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {(list.data?.analyses ?? []).map((a) => (
              <tr key={a.id}>
                <td>{formatTime(a.created_at_ms)}</td>
                <td>{a.status}</td>
                <td>{a.mug_count ?? "—"}</td>
                <td>{a.verdict ?? "—"}</td>
                <td>
                  <button type="button" class="link" onClick={() => props.onOpen(a)}>
                    Show
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager
        offset={offset}
        size={limit}
        shown={list.data?.analyses.length ?? 0}
        onOffset={setOffset}
        back="Newer"
        forward="Older"
      />
    </>
  );
}

export function MugsPage({ principal }: { principal: Principal }) {
  const [current, setCurrent] = useState<{ analysis: Analysis; photo: string | null } | null>(null);
  const [version, setVersion] = useState(0);
  const canUpload = can(principal, "analysis:write");
  return (
    <div class="grid">
      {canUpload && (
        <Section title="Analyse a photo" id="upload-title">
          <Upload
            onAnalysis={(analysis, photo) => {
              setCurrent({ analysis, photo });
              setVersion((v) => v + 1);
            }}
          />
        </Section>
      )}
      {current && (
        <Section title="Result" id="result-title">
          <AnalysisResult
            analysis={current.analysis}
            photo={current.photo}
            canFeedback={canUpload}
            onChange={(analysis) => setCurrent({ analysis, photo: current.photo })}
          />
        </Section>
      )}
      <Section title="History" id="history-title">
        <History version={version} onOpen={(analysis) => setCurrent({ analysis, photo: null })} />
      </Section>
    </div>
  );
}
