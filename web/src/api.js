// The REST API with the access token held in memory only. The refresh token is an
// httpOnly cookie the API sets (path /api/auth): the page never sees it, and a
// refresh before the access token expires keeps the session going.

const REFRESH_MARGIN_MS = 60_000;

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `request failed (${status})`);
    this.status = status;
    this.code = error?.code || "unavailable";
    this.details = error?.details || {};
  }
}

export class Api {
  constructor() {
    this.accessToken = null;
    this.user = null;
    this.listeners = new Set();
    this.refreshTimer = null;
  }

  /** Called with the new access token after every login or refresh, null on logout. */
  onToken(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async request(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (this.accessToken) headers.Authorization = `Bearer ${this.accessToken}`;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
      });
    } catch {
      throw new ApiError(0, { code: "unavailable", message: "The hub cannot be reached." });
    }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, data?.error);
    return data;
  }

  async register(email, name, password) {
    this.accept(await this.request("POST", "/api/auth/register", { email, name, password }));
  }

  async login(email, password) {
    this.accept(await this.request("POST", "/api/auth/login", { email, password }));
  }

  /** A session from the refresh cookie alone: true when there was one. */
  async resume() {
    try {
      this.accept(await this.request("POST", "/api/auth/refresh", {}));
      return true;
    } catch (error) {
      if (error.status === 401 || error.status === 400) return false;
      throw error;
    }
  }

  async logout() {
    try {
      await this.request("POST", "/api/auth/logout", {});
    } finally {
      this.forget();
    }
  }

  accept(tokens) {
    this.accessToken = tokens.access_token;
    this.user = tokens.user;
    clearTimeout(this.refreshTimer);
    const ttlMs = (tokens.expires_in ?? 900) * 1000;
    // a minute before it expires; a token that lives under two minutes, at half its life
    this.refreshTimer = setTimeout(() => this.refreshSoon(), Math.max(ttlMs - REFRESH_MARGIN_MS, ttlMs / 2));
    for (const listener of this.listeners) listener(this.accessToken);
  }

  async refreshSoon() {
    try {
      this.accept(await this.request("POST", "/api/auth/refresh", {}));
    } catch (error) {
      if (error.status === 401) this.forget();
      else this.refreshTimer = setTimeout(() => this.refreshSoon(), 10_000);
    }
  }

  forget() {
    clearTimeout(this.refreshTimer);
    this.accessToken = null;
    this.user = null;
    for (const listener of this.listeners) listener(null);
  }
}
