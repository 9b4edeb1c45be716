"""Screenshot a running NNI experiment's web UI with headless Chromium (for the README).

    python experiments/screenshot_webui.py --port 8080 --out experiments/results/webui

Writes ``<out>_overview.png`` (experiment status, best metric, tuner), ``<out>_trials.png``
(trial table with the best trial expanded: its sample as parameters) and
``<out>_intermediate.png`` (per-epoch validation accuracy of every trial). Needs Debian's
``chromium`` and ``pip install playwright`` (it drives the system Chromium; nothing is downloaded).
"""
from __future__ import annotations

import argparse

from playwright.sync_api import sync_playwright

from nni_nasext.adapters.tuner import metric_value
from nni_nasext.nnictl_tools import Rest

FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--disable-quic']


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--port', type=int, required=True)
    p.add_argument('--out', default='experiments/results/webui')
    p.add_argument('--chromium', default='/usr/bin/chromium')
    args = p.parse_args()
    base = f'http://127.0.0.1:{args.port}'
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=FLAGS)
        page = browser.new_page(viewport={'width': 1500, 'height': 1000})
        page.goto(f'{base}/oview')
        page.wait_for_timeout(4000)
        page.screenshot(path=f'{args.out}_overview.png')

        page.goto(f'{base}/detail')
        page.wait_for_timeout(4000)
        page.get_by_text('Intermediate result').first.click()
        page.wait_for_timeout(2500)
        page.screenshot(path=f'{args.out}_intermediate.png')
        # expand the row of the best trial: the trial's parameters are its architecture
        page.get_by_text('Default metric').first.click()
        page.wait_for_timeout(1000)
        trials = [t for t in Rest(args.port).trials() if t['final'] is not None]
        best = max(trials, key=lambda t: metric_value(t['final']))['id']
        row = page.locator('.ms-DetailsRow', has_text=best).first
        row.locator('[data-automation-key="_expand"] i').first.click()
        page.wait_for_timeout(1500)
        page.screenshot(path=f'{args.out}_trials.png', full_page=True)
        browser.close()
    print(f'wrote {args.out}_overview.png, {args.out}_trials.png, {args.out}_intermediate.png')


if __name__ == '__main__':
    main()
