import { expect } from 'chai';
import { existsSync } from 'fs';
import type { Browser, Page } from 'playwright-core';
import { FlowNode, NodeRedProcess } from './node-red-process';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Per node: a setting to change, and a value its dialog must flag as invalid. */
interface DialogCheck {
  type: string;
  /** Settings to change, in order, and the value each must have in the deployed flow. */
  change: { field: string; value: string | boolean; expected: unknown }[];
  invalid?: { field: string; value: string };
}

const CHECKS: DialogCheck[] = [
  {
    type: 'classifier-loader',
    change: [
      { field: 'path', value: 'recordings/training', expected: 'recordings/training' },
      { field: 'seed', value: '7', expected: '7' },
    ],
    invalid: { field: 'validationSplit', value: '1.5' },
  },
  {
    type: 'classifier-upsampler',
    change: [{ field: 'ratio', value: '0.25', expected: '0.25' }],
    invalid: { field: 'ratio', value: '2' },
  },
  {
    type: 'classifier-mixup',
    change: [{ field: 'enabled', value: false, expected: false }],
  },
  {
    type: 'classifier-label-smoothing',
    change: [{ field: 'alpha', value: '0.2', expected: '0.2' }],
    invalid: { field: 'alpha', value: '1' },
  },
  {
    type: 'classifier-trainer',
    change: [{ field: 'epochs', value: '20', expected: '20' }],
    invalid: { field: 'epochs', value: 'many' },
  },
  {
    type: 'classifier-evaluator',
    change: [{ field: 'part', value: 'validation', expected: 'validation' }],
  },
  {
    type: 'classifier-predict',
    change: [
      { field: 'thresholdMode', value: 'fixed', expected: 'fixed' },
      { field: 'threshold', value: '0.3', expected: '0.3' },
    ],
    invalid: { field: 'maxLabels', value: '-1' },
  },
];

/**
 * The Node-RED editor in a real headless Chromium: the palette holds the seven nodes, each edit
 * dialog opens, takes a new setting, flags an invalid one, and the deployed flow keeps the
 * setting; the browser console stays free of errors.
 */
describe('the editor in headless Chromium', function () {
  this.timeout(5 * 60 * 1000);
  const red = new NodeRedProcess();
  let browser: Browser | undefined;
  let page: Page;
  const consoleErrors: string[] = [];

  before(async function () {
    if (!existsSync(CHROMIUM)) {
      if (process.env.CI) throw new Error(`${CHROMIUM} is missing; CI installs Debian's chromium`);
      process.stdout.write(
        `      skipped: no Chromium at ${CHROMIUM} (apt-get install chromium)\n`,
      );
      this.skip();
    }
    await red.start();
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage();
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('pageerror', (err) => consoleErrors.push(err.message));
    await page.goto(red.url);
    await page.waitForSelector('.red-ui-palette-node', { timeout: 60000 });
  });

  after(async () => {
    await browser?.close();
    await red.stop();
  });

  it('should show all seven nodes in the palette', async () => {
    for (const { type } of CHECKS) {
      const entry = page.locator(`.red-ui-palette-node[data-palette-type="${type}"]`);
      expect(await entry.count(), type).to.equal(1);
    }
  });

  it('should edit each node, flag invalid values, deploy and keep the settings', async () => {
    // Drag each node from the palette onto the workspace, as a user does.
    for (const [i, { type }] of CHECKS.entries()) {
      await page.dragAndDrop(
        `.red-ui-palette-node[data-palette-type="${type}"]`,
        '#red-ui-workspace-chart',
        { targetPosition: { x: 200, y: 60 + 60 * i } },
      );
    }
    const nodes = await page.evaluate(
      (types) => {
        const red = (
          window as unknown as {
            RED: { nodes: { filterNodes: (f: { type: string }) => { id: string }[] } };
          }
        ).RED;
        return types.map((type) => ({ type, id: red.nodes.filterNodes({ type })[0]?.id }));
      },
      CHECKS.map((c) => c.type),
    );
    expect(nodes.filter((n) => n.id === undefined)).to.deep.equal([]);

    for (const [i, check] of CHECKS.entries()) {
      await page.evaluate((id) => {
        const red = (
          window as unknown as {
            RED: {
              editor: { edit: (n: unknown) => void };
              nodes: { node: (id: string) => unknown };
            };
          }
        ).RED;
        red.editor.edit(red.nodes.node(id));
      }, nodes[i].id);
      await page.waitForSelector(`#node-input-${check.change[0].field}`, { state: 'attached' });
      // The dialog slides in (a CSS transition of its right edge): act on it once it has come to
      // rest, or a click may land where a field was a moment before.
      await page.waitForFunction(() => {
        const trays = document.querySelectorAll('.red-ui-tray');
        const tray = trays[trays.length - 1];
        return tray !== undefined && getComputedStyle(tray).right === '0px';
      });

      if (check.invalid) {
        const input = page.locator(`#node-input-${check.invalid.field}`);
        await input.fill(check.invalid.value);
        await input.dispatchEvent('change');
        await input.blur();
        expect(
          await input.evaluate((el) => el.classList.contains('input-error')),
          `${check.type}.${check.invalid.field} = ${check.invalid.value} flagged`,
        ).to.equal(true);
        await input.fill(String(await defaultOf(check.type, check.invalid.field)));
        await input.dispatchEvent('change');
      }

      for (const change of check.change) {
        const field = page.locator(`#node-input-${change.field}`);
        const where = `${check.type}.${change.field}`;
        const set = async () => {
          const typed = await field.evaluate((el) => el.classList.contains('red-ui-typedInput'));
          if (typed) {
            // A typed input hides its own <input> behind a widget: set it through the widget.
            await field.evaluate((el, value) => {
              const $ = (
                window as unknown as {
                  $: (e: Element) => { typedInput: (...a: unknown[]) => void };
                }
              ).$;
              $(el).typedInput('value', value);
            }, String(change.value));
          } else if (typeof change.value === 'boolean') await field.setChecked(change.value);
          else if ((await field.evaluate((el) => el.tagName)) === 'SELECT') {
            await field.selectOption(change.value);
          } else await field.fill(change.value, { timeout: 5000 });
        };
        await set().catch(async (err: Error) => {
          await page.screenshot({ path: '/tmp/editor-failure.png' });
          throw new Error(`${where}: ${err.message.split('\n')[0]}`);
        });
      }
      await page.click('#node-dialog-ok');
      await page.waitForSelector('#node-dialog-ok', { state: 'detached' });
    }

    await page.click('#red-ui-header-button-deploy');
    const deployed = await red
      .waitFor(
        async () => {
          const flows = await red.flows();
          return nodes.every((n) => flows.some((f) => f.id === n.id)) ? flows : undefined;
        },
        30,
        'the deployed flow',
      )
      .catch(async (err: Error) => {
        await page.screenshot({ path: '/tmp/editor-failure.png' });
        throw err;
      });
    for (const [i, check] of CHECKS.entries()) {
      const node = deployed.find((n) => n.id === nodes[i].id) as FlowNode;
      for (const change of check.change) {
        expect(String(node[change.field]), `${check.type}.${change.field}`).to.equal(
          String(change.expected),
        );
      }
    }
  });

  it('should leave no errors in the browser console', () => {
    expect(consoleErrors).to.deep.equal([]);
  });

  async function defaultOf(type: string, field: string): Promise<unknown> {
    return page.evaluate(
      ([t, f]) => {
        const red = (
          window as unknown as {
            RED: {
              nodes: { getType: (t: string) => { defaults: Record<string, { value: unknown }> } };
            };
          }
        ).RED;
        return red.nodes.getType(t).defaults[f].value;
      },
      [type, field],
    );
  }
});
