// A rolling line chart on a canvas: the last 120 samples, a max label and the current value.

const SAMPLES = 120;

export class Chart {
  /** @param {HTMLElement} parent @param {string} title @param {(v: number) => string} format @param {string} id */
  constructor(parent, title, format, id) {
    this.values = /** @type {number[]} */ ([]);
    this.format = format;
    this.figure = document.createElement('figure');
    this.figure.className = 'chart';
    this.figure.dataset.testid = 'chart';
    this.figure.dataset.chart = id;
    const cap = document.createElement('figcaption');
    const name = document.createElement('span');
    name.textContent = title;
    this.value = document.createElement('strong');
    this.value.dataset.testid = `value-${id}`;
    cap.append(name, this.value);
    this.canvas = document.createElement('canvas');
    this.canvas.width = 320;
    this.canvas.height = 110;
    this.canvas.setAttribute('role', 'img');
    this.canvas.setAttribute('aria-label', `${title} over the last two minutes`);
    this.figure.append(cap, this.canvas);
    parent.appendChild(this.figure);
  }

  /** @param {number} v */
  push(v) {
    this.values.push(Number.isFinite(v) ? v : 0);
    if (this.values.length > SAMPLES) this.values.shift();
    this.value.textContent = this.format(this.values.at(-1) ?? 0);
    this.draw();
  }

  draw() {
    const c = /** @type {CanvasRenderingContext2D} */ (this.canvas.getContext('2d'));
    const { width: w, height: h } = this.canvas;
    c.clearRect(0, 0, w, h);
    const max = Math.max(1e-9, ...this.values) * 1.15;
    c.strokeStyle = '#3f4248';
    c.lineWidth = 1;
    for (const f of [0.25, 0.5, 0.75]) {
      c.beginPath();
      c.moveTo(0, h * f);
      c.lineTo(w, h * f);
      c.stroke();
    }
    c.fillStyle = '#949ba4';
    c.font = '11px sans-serif';
    c.fillText(this.format(max / 1.15), 4, 12);
    c.strokeStyle = '#5865f2';
    c.lineWidth = 2;
    c.beginPath();
    this.values.forEach((v, i) => {
      const x = w - (this.values.length - 1 - i) * (w / (SAMPLES - 1));
      const y = h - (v / max) * (h - 4);
      if (i === 0) c.moveTo(x, y);
      else c.lineTo(x, y);
    });
    c.stroke();
  }
}
