#!/bin/sh
# Chromium in kiosk mode on the kiosk's own screen. Started by baodao-kiosk-screen.service (under cage);
# if Chromium exits or crashes, systemd starts it again (Restart=always).
# 以全屏模式启动 Chromium;退出或崩溃后由 systemd 自动重启。
set -eu

URL="${BAODAO_KIOSK_URL:-http://127.0.0.1:8100/}"
PROFILE="${BAODAO_BROWSER_PROFILE:-${XDG_RUNTIME_DIR:-/tmp}/baodao-chromium}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

# Wait (up to 60 s) for the kiosk service so the member never sees a connection error page.
i=0
while [ "$i" -lt 120 ]; do
    if wget -q -O /dev/null "${URL%/}/healthz" 2>/dev/null || curl -fs -o /dev/null "${URL%/}/healthz" 2>/dev/null; then
        break
    fi
    i=$((i + 1))
    sleep 0.5
done

# X11 instead of cage: no screen saver, no DPMS blanking. (Under cage, nothing blanks the screen.)
if [ -n "${DISPLAY:-}" ] && command -v xset >/dev/null 2>&1; then
    xset s off || true
    xset s noblank || true
    xset -dpms || true
fi

# A fresh profile each start: no "restore pages?" bubble after a power cut, no stale cache.
rm -rf "$PROFILE"
mkdir -p "$PROFILE"

exec "$CHROMIUM" \
    --kiosk "$URL" \
    --user-data-dir="$PROFILE" \
    --no-first-run \
    --noerrdialogs \
    --disable-session-crashed-bubble \
    --disable-infobars \
    --disable-translate \
    --disable-features=Translate,TranslateUI,OverscrollHistoryNavigation,TouchpadOverscrollHistoryNavigation \
    --overscroll-history-navigation=0 \
    --disable-pinch \
    --disable-component-update \
    --disable-background-networking \
    --disable-sync \
    --check-for-update-interval=31536000 \
    --autoplay-policy=no-user-gesture-required \
    --password-store=basic \
    --ozone-platform-hint=auto \
    --enable-features=OverlayScrollbar \
    --touch-events=enabled
