# ff_user: the system user and group "firmfleet" that both daemons run as
# (shared by firmfleet-controller and firmfleet-agent). Idempotent: an
# existing group or user is kept as it is; no home directory, no shell.
ff_user() {
  if ! getent group firmfleet >/dev/null; then
    addgroup --system --quiet firmfleet
  fi
  if ! getent passwd firmfleet >/dev/null; then
    adduser --system --quiet --ingroup firmfleet --no-create-home \
      --home /nonexistent --gecos "firmfleet daemons" firmfleet
  fi
}
