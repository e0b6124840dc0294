// Debian's Chromium, headless, as this machine kind runs it: no sandbox
// (root), no GPU, and none of the background connections that a closed
// network refuses. playwright-core drives it; it never downloads a browser.
import { chromium } from "playwright-core";

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

export function check(condition, message) {
  if (!condition) throw new Error(message);
}
