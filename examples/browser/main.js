// The notebook page: each action is one run of the composed app, whose
// files persist in OPFS; the file list at the bottom is read with the
// page's own OPFS calls, not through the app.

import { LarderLockedError, openLarder } from '/larder/larder.js';

const $ = (id) => document.getElementById(id);
const setState = (state, text) => {
  document.body.dataset.state = state;
  $('status').textContent = text;
};

// `visits N` and `note NAME TEXT` lines from the app.
function show(stdout) {
  const notes = [];
  for (const line of stdout.split('\n')) {
    const visits = line.match(/^visits (\d+)$/);
    if (visits) $('visits').textContent = `Opened ${visits[1]} time${visits[1] === '1' ? '' : 's'}.`;
    const note = line.match(/^note (\S+) (.*)$/);
    if (note) notes.push(note[2]);
  }
  $('notes').replaceChildren(...notes.map((text) => Object.assign(document.createElement('li'), { textContent: text })));
}

async function listFiles(dir, prefix = '') {
  const lines = [];
  for await (const [name, h] of dir.entries()) {
    if (h.kind === 'directory') lines.push(`${prefix}${name}/`, ...(await listFiles(h, `${prefix}${name}/`)));
    else lines.push(`${prefix}${name}  ${(await h.getFile()).size} bytes`);
  }
  return lines.sort();
}

async function showFiles() {
  const root = await navigator.storage.getDirectory();
  const larder = await root.getDirectoryHandle('larder', { create: true });
  $('files').textContent = (await listFiles(larder, 'larder/')).join('\n');
}

async function run(larder, argv) {
  const r = await larder.run(['notebook', ...argv]);
  if (r.code !== 0) throw new Error(`notebook ${argv.join(' ')} exited with ${r.code}: ${r.stderr}`);
  return r.stdout;
}

try {
  const larder = await openLarder({ component: '/app/notebook/notebook.js' });
  window.larder = larder;
  show(await run(larder, ['visit']));
  await showFiles();
  $('add').addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = $('text').value;
    $('add-fields').disabled = true;
    try {
      await run(larder, ['add', text]);
      $('text').value = '';
      show(await run(larder, ['list']));
      await showFiles();
      document.body.dataset.notes = $('notes').children.length;
      $('add-fields').disabled = false;
    } catch (err) {
      setState('error', err.message);
    }
  });
  $('add-fields').disabled = false;
  setState('ready', 'Ready.');
} catch (e) {
  if (e instanceof LarderLockedError) setState('locked', `Not started: ${e.message}.`);
  else setState('error', `Larder could not start: ${e.message}`);
}
