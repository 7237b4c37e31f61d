'use strict';
(function () {
  const svg = document.documentElement;
  const total = Number(svg.getAttribute('data-samples'));
  const left = Number(svg.getAttribute('data-x'));
  const fullWidth = Number(svg.getAttribute('data-width'));
  const charWidth = Number(svg.getAttribute('data-char-width'));
  const padding = Number(svg.getAttribute('data-text-padding'));
  const details = document.getElementById('details');
  const matched = document.getElementById('matched');
  const resetControl = document.getElementById('reset');
  const searchControl = document.getElementById('search');
  const frames = Array.from(document.querySelectorAll('g.frame'));
  const info = new Map();
  for (const g of frames) {
    const title = g.querySelector('title').textContent;
    info.set(g, {
      start: Number(g.getAttribute('data-s')),
      count: Number(g.getAttribute('data-n')),
      depth: Number(g.getAttribute('data-d')),
      func: g.getAttribute('data-f'),
      label: title.slice(0, title.lastIndexOf('\n')),
      rect: g.querySelector('rect'),
      text: g.querySelector('text'),
    });
  }
  let lastTerm = '';

  // Same rule as the writer's fit_text().
  function fit(label, width) {
    const fits = width > 2 * padding ? Math.floor((width - 2 * padding) / charWidth) : 0;
    if (fits < 3) return '';
    const chars = Array.from(label);
    return chars.length <= fits ? label : chars.slice(0, fits - 2).join('') + '..';
  }
  function place(g, x, width) {
    const f = info.get(g);
    f.rect.setAttribute('x', x.toFixed(2));
    f.rect.setAttribute('width', width.toFixed(2));
    f.text.setAttribute('x', (x + padding).toFixed(2));
    f.text.textContent = fit(f.label, width);
    g.classList.remove('hidden');
  }
  function describe(count) {
    const percent = total > 0 ? (100 * count / total).toFixed(2) : '0.00';
    return count + (count === 1 ? ' sample, ' : ' samples, ') + percent + '%';
  }

  function zoom(id) {
    const target = document.getElementById(id);
    const z = target && info.get(target);
    if (!z) return false;
    for (const g of frames) {
      const f = info.get(g);
      const inside = f.start >= z.start && f.start + f.count <= z.start + z.count;
      const encloses = f.start <= z.start && f.start + f.count >= z.start + z.count;
      if (f.depth < z.depth && encloses) {
        place(g, left, fullWidth);
      } else if (f.depth >= z.depth && inside) {
        place(g, left + (f.start - z.start) / z.count * fullWidth, f.count / z.count * fullWidth);
      } else {
        g.classList.add('hidden');
      }
    }
    resetControl.classList.remove('hidden');
    return true;
  }
  function reset() {
    for (const g of frames) {
      const f = info.get(g);
      place(g, left + f.start / total * fullWidth, f.count / total * fullWidth);
    }
    resetControl.classList.add('hidden');
  }
  // A regular expression, or a plain substring when the term is not one,
  // matched against function names. Returns the matched share of all
  // samples in percent; a match nested in another counts once.
  function search(term) {
    lastTerm = term || '';
    for (const g of frames) g.classList.remove('match');
    if (!lastTerm) {
      matched.textContent = '';
      return 0;
    }
    let test;
    try {
      const re = new RegExp(lastTerm);
      test = (s) => re.test(s);
    } catch (e) {
      test = (s) => s.includes(lastTerm);
    }
    const hits = [];
    for (const g of frames) {
      const f = info.get(g);
      if (test(f.func)) {
        g.classList.add('match');
        hits.push(f);
      }
    }
    // Frames overlap in samples only when one is inside the other.
    hits.sort((a, b) => a.start - b.start || b.count - a.count);
    let count = 0;
    let end = -1;
    for (const f of hits) {
      if (f.start >= end) {
        count += f.count;
        end = f.start + f.count;
      }
    }
    const percent = total > 0 ? 100 * count / total : 0;
    matched.textContent = 'Matched: ' + percent.toFixed(1) + '%';
    return percent;
  }

  svg.addEventListener('click', (event) => {
    const g = event.target.closest('g.frame');
    if (g) {
      zoom(g.id);
    } else if (event.target === resetControl) {
      reset();
    } else if (event.target === searchControl) {
      const term = window.prompt('Search function names (regular expression or text):', lastTerm);
      if (term !== null) search(term);
    }
  });
  svg.addEventListener('mouseover', (event) => {
    const g = event.target.closest('g.frame');
    if (g) {
      const f = info.get(g);
      details.textContent = f.label + ' (' + describe(f.count) + ')';
    }
  });
  svg.addEventListener('mouseout', (event) => {
    if (event.target.closest('g.frame')) details.textContent = ' ';
  });

  window.pyflame = { zoom, reset, search };
})();
