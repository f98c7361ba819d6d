// A minimal stand-in for `document` so the markdown renderer runs in node: elements, text nodes and
// fragments with just the members the renderer uses, plus a serializer for assertions.

class Node {
  constructor() {
    /** @type {Node[]} */ this.childNodes = [];
  }
  appendChild(n) {
    this.childNodes.push(n);
    return n;
  }
  get textContent() {
    return this.childNodes.map((c) => c.textContent).join('');
  }
}

class Text extends Node {
  constructor(data) {
    super();
    this.data = String(data);
  }
  get textContent() {
    return this.data;
  }
}

class Element extends Node {
  constructor(tag) {
    super();
    this.tagName = tag.toUpperCase();
    /** @type {Record<string,string>} */ this.attributes = {};
    this.className = '';
  }
  setAttribute(k, v) {
    this.attributes[k] = String(v);
  }
  getAttribute(k) {
    return this.attributes[k] ?? null;
  }
}

export const fakeDocument = {
  createElement: (t) => new Element(t),
  createTextNode: (t) => new Text(t),
  createDocumentFragment: () => new Node(),
};

/** A compact, unambiguous rendering: elements as [tag attrs](children), text JSON-quoted. */
export function serialize(node) {
  if (node instanceof Text) return JSON.stringify(node.data);
  const inner = node.childNodes.map(serialize).join(' ');
  if (!(node instanceof Element)) return inner;
  const attrs = Object.entries(node.attributes).map(([k, v]) => ` ${k}=${JSON.stringify(v)}`).join('');
  const cls = node.className ? ` class=${JSON.stringify(node.className)}` : '';
  return `[${node.tagName.toLowerCase()}${cls}${attrs}](${inner})`;
}

/** Every element in the tree. */
export function elements(node) {
  const out = [];
  const walk = (n) => {
    if (n instanceof Element) out.push(n);
    n.childNodes.forEach(walk);
  };
  walk(node);
  return out;
}
