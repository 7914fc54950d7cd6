// The HTTP API with the signed-in user's bearer token. Errors carry the server's words.
export const session = { token: null, user: null, role: null };
const ROLES = ["viewer", "operator", "engineer", "admin"];

/** Whether the signed-in role may do what ``role`` may (the server checks anyway). */
export function can(role) {
  return ROLES.indexOf(session.role) >= ROLES.indexOf(role);
}

export async function api(path, { method = "GET", body } = {}) {
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${session.token}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = answer?.detail;
    const message = Array.isArray(detail)
      ? detail.map((d) => `${d.loc.join(".")}: ${d.msg}`).join("; ")
      : detail || `${response.status} ${response.statusText}`;
    throw Object.assign(new Error(message), { status: response.status });
  }
  return answer;
}
