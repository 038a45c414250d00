// Servers: the workers pulling jobs, with state, device, counters and last heartbeat; pause,
// resume and drain for holders of `servers:control`.

import { useEffect } from "preact/hooks";
import { type Principal, call, can } from "../api";
import { ErrorText, Section, formatTime, useAction, useLoad } from "../ui";

interface Worker {
  id: string;
  name: string;
  host: string;
  device: string;
  state: string;
  status?: string;
  requested_state?: string | null;
  kinds: string[];
  jobs_in_hand: number;
  jobs_done: number;
  jobs_failed: number;
  heartbeat_at_ms: number;
}

export function ServersPage({ principal }: { principal: Principal }) {
  const servers = useLoad(() => call<{ servers: Worker[] }>("GET", "/api/v1/servers"), []);
  useEffect(() => {
    const timer = window.setInterval(servers.reload, 5000);
    return () => window.clearInterval(timer);
  }, []);
  const control = useAction(async (id: string, action: string) => {
    if (action === "drain" && !window.confirm("Drain this worker? It finishes its jobs and exits.")) return;
    await call("POST", `/api/v1/servers/${id}/${action}`);
    servers.reload();
  });
  const canControl = can(principal, "servers:control");
  return (
    <Section title="Workers" id="workers-title">
      <ErrorText error={servers.error ?? control.error} />
      {servers.data && servers.data.servers.length === 0 && <p>No worker has registered.</p>}
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">State</th>
              <th scope="col">Device</th>
              <th scope="col">Kinds</th>
              <th scope="col">In hand / done / failed</th>
              <th scope="col">Last heartbeat</th>
              {canControl && <th scope="col">Control</th>}
            </tr>
          </thead>
          <tbody>
            {(servers.data?.servers ?? []).map((w) => (
              <tr key={w.id}>
                <td title={`${w.host} · ${w.id}`}>{w.name}</td>
                <td>
                  {w.state}
                  {w.status ? ` (${w.status})` : ""}
                  {w.requested_state ? `, asked: ${w.requested_state}` : ""}
                </td>
                <td>{w.device}</td>
                <td>{w.kinds.join(", ")}</td>
                <td>
                  {w.jobs_in_hand} / {w.jobs_done} / {w.jobs_failed}
                </td>
                <td>{formatTime(w.heartbeat_at_ms)}</td>
                {canControl && (
                  <td class="row">
                    {["pause", "resume", "drain"].map((action) => (
                      <button
                        key={action}
                        type="button"
                        class="secondary"
                        disabled={control.busy}
                        aria-label={`${action} ${w.name}`}
                        onClick={() => void control.run(w.id, action)}
                      >
                        {action}
                      </button>
                    ))}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Section>
  );
}
