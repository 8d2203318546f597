# Sourced by scripts/setup and scripts/ensure-venv: the lane and its venv.
#   LANE  a Home Assistant release line (2025.4, 2026.2, 2026.10); by default the lane of the
#         venv VENV names (its marker), else the newest release tested
#   VENV  .venv for the newest release tested, .venv-<lane> for the others
# shellcheck shell=bash
DEFAULT_LANE=2026.10
if [ -z "${LANE:-}" ] && [ -n "${VENV:-}" ] && [ -f "$VENV/.home-agent-ready" ]; then
  LANE=$(cat "$VENV/.home-agent-ready")
fi
LANE=${LANE:-$DEFAULT_LANE}
if [ "$LANE" = "$DEFAULT_LANE" ]; then VENV=${VENV:-.venv}; else VENV=${VENV:-.venv-$LANE}; fi
