/**
 * The page shell: sign-in, navigation by URL fragment (`#/keys/ID`), and the
 * view for the current fragment. The fragment never holds the admin key.
 */
import { useEffect, useMemo, useState } from "preact/hooks";
import { Api, ApiError, verifyKey } from "./api.ts";
import { forgetKey, storedKey, storeKey } from "./session.ts";
import type { HourlyReport } from "./types.ts";
import { Overview } from "./views/overview.tsx";
import { Usage } from "./views/usage.tsx";
import { Keys } from "./views/keys.tsx";
import { KeyPage } from "./views/key_page.tsx";
import { Models } from "./views/models.tsx";
import { Requests } from "./views/requests.tsx";

/** What every view gets: the API client and the gateway's calendar. */
export interface Session {
  api: Api;
  /** Today on the usage calendar (`USAGE_TZ`), as the gateway says. */
  today: string;
  /** The usage calendar's IANA time zone. */
  timeZone: string;
}

function currentRoute(): string[] {
  return location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
}

const NAV = [
  { id: "", label: "Overview" },
  { id: "usage", label: "Usage" },
  { id: "keys", label: "Keys" },
  { id: "models", label: "Models & providers" },
  { id: "requests", label: "Requests" },
];

function SignIn(props: { onSignedIn: (key: string) => void; message?: string }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState(props.message);
  const [busy, setBusy] = useState(false);
  return (
    <main class="signin">
      <form
        class="card"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(undefined);
          try {
            await verifyKey(key.trim());
            props.onSignedIn(key.trim());
          } catch (err) {
            setError(err instanceof ApiError ? err.message : String(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <h1>Gateway admin</h1>
        <label for="admin-key">Admin key</label>
        <input
          id="admin-key"
          type="password"
          autocomplete="off"
          required
          value={key}
          onInput={(e) => setKey(e.currentTarget.value)}
        />
        <p class="hint">
          The <code>ADMIN_KEY</code>{" "}
          the gateway runs with. It stays in this tab only and is sent to the admin API in a header.
        </p>
        <p class="error-text" role="alert">{error ?? ""}</p>
        <button type="submit" class="primary" disabled={busy}>Sign in</button>
      </form>
    </main>
  );
}

/** The whole page. */
export function App() {
  const [key, setKey] = useState<string | null>(storedKey());
  const [rejected, setRejected] = useState<string>();
  const [calendar, setCalendar] = useState<{ today: string; timeZone: string }>();
  const [route, setRoute] = useState(currentRoute());

  useEffect(() => {
    const on = () => setRoute(currentRoute());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);

  const signOut = (message?: string) => {
    forgetKey();
    setKey(null);
    setCalendar(undefined);
    setRejected(message);
  };

  const api = useMemo(
    () => key ? new Api(key, (m) => signOut(`Signed out: ${m}`)) : null,
    [key],
  );

  useEffect(() => {
    if (!api) return;
    api.get<HourlyReport>("/admin/usage/hourly").then(
      (h) => setCalendar({ today: h.date, timeZone: h.time_zone }),
      (e) => signOut(e instanceof ApiError ? e.message : String(e)),
    );
  }, [api]);

  if (!api) {
    return (
      <SignIn
        message={rejected}
        onSignedIn={(k) => {
          storeKey(k);
          setRejected(undefined);
          setKey(k);
        }}
      />
    );
  }

  const [view, id] = route;
  const session = calendar && { api, ...calendar };
  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <span class="brand">Gateway admin</span>
        <nav aria-label="Views">
          {NAV.map((n) => (
            <a
              key={n.id}
              href={`#/${n.id}`}
              aria-current={(view ?? "") === n.id ? "page" : undefined}
            >
              {n.label}
            </a>
          ))}
        </nav>
        <span class="tz" title="Days and hours are on this time zone (USAGE_TZ)">
          {calendar?.timeZone ?? ""}
        </span>
        <button type="button" class="signout" onClick={() => signOut()}>Sign out</button>
      </header>
      <main id="main" tabIndex={-1}>
        {session && (
          view === "usage"
            ? <Usage s={session} />
            : view === "keys" && id
            ? <KeyPage s={session} id={id} key={id} />
            : view === "keys"
            ? <Keys s={session} />
            : view === "models"
            ? <Models s={session} />
            : view === "requests"
            ? <Requests s={session} keyId={id} key={id ?? ""} />
            : <Overview s={session} />
        )}
      </main>
    </>
  );
}
