// A client of the service generated from its OpenAPI document (types in ./api.generated.ts,
// which check.mjs generates in memory; calls through openapi-fetch). It is only type-checked:
// each call names a real route, sends the body the document declares and reads fields of the
// answer it declares, so a document that drops, renames or loosens them stops this file
// compiling.
import createClient from "openapi-fetch";
import type { components, paths } from "./api.generated.js";

type ErrorBody = components["schemas"]["ErrorBody"];

const client = createClient<paths>({ baseUrl: "http://localhost:8443" });

/** The code and sentence of a refusal, as the UI shows them. */
export function refusal(body: ErrorBody): string {
  return `${body.error.code}: ${body.error.message}`;
}

/** `GET /healthz`. */
export async function healthy(): Promise<boolean> {
  const { data } = await client.GET("/healthz");
  return data?.status === "ok";
}

/** An admin adds a person and issues an enrolment ticket for them. */
export async function ticketFor(token: string, userName: string): Promise<string> {
  const headers = { authorization: `Bearer ${token}` };
  const person = await client.POST("/api/v1/admin/people", {
    headers,
    body: { user_name: userName, display_name: userName },
  });
  if (person.error) throw new Error(refusal(person.error));
  const ticket = await client.POST("/api/v1/admin/enrolment-tickets", {
    headers,
    body: { person_id: person.data.id, ttl_seconds: 600 },
  });
  if (ticket.error) throw new Error(refusal(ticket.error));
  return ticket.data.web_link ?? ticket.data.secret;
}

/** Host names of the devices whose latest report is older than `sinceMs`. */
export async function quietDevices(token: string, sinceMs: number): Promise<string[]> {
  const { data, error } = await client.GET("/api/v1/admin/devices", {
    headers: { authorization: `Bearer ${token}` },
  });
  if (error) throw new Error(refusal(error));
  return data.filter((d) => (d.last_report_at_ms ?? 0) < sinceMs).map((d) => d.hostname);
}

/** A helpdesk revokes a recovery by id. */
export async function cancelRecovery(token: string, id: string): Promise<string> {
  const { data, error } = await client.DELETE("/api/v1/admin/recoveries/{id}", {
    headers: { authorization: `Bearer ${token}` },
    params: { path: { id } },
  });
  if (error) throw new Error(refusal(error));
  return data.id;
}
