// A grouped bar chart as a standalone SVG: one group per metric, one bar per network mode, heights as ratios to a baseline.

export interface ChartGroup {
  label: string;
  /** Per series: the ratio drawn, and the absolute value printed on the bar. */
  bars: { series: string; ratio: number; text: string }[];
  /** A ratio to reach, drawn as a dashed line across the group. */
  target?: number;
}

const COLORS = ["#8c8c8c", "#4c78a8", "#f58518", "#54a24b"];
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export function barChart(title: string, subtitle: string, groups: ChartGroup[]): string {
  const series = [...new Set(groups.flatMap((g) => g.bars.map((b) => b.series)))];
  const barW = 34;
  const gap = 28;
  const groupW = series.length * barW + gap;
  const left = 60;
  const top = 70;
  const plotH = 260;
  const width = left + groups.length * groupW + 20;
  const height = top + plotH + 70;
  const maxRatio = Math.max(1.2, ...groups.flatMap((g) => [...g.bars.map((b) => b.ratio), g.target ?? 0]));
  const y = (r: number) => top + plotH - (r / maxRatio) * plotH;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="${left}" y="40" fill="#555">${esc(subtitle)}</text>`,
  ];
  for (let r = 0; r <= maxRatio + 1e-9; r += maxRatio > 3 ? 1 : 0.25) {
    out.push(`<line x1="${left}" x2="${width - 10}" y1="${y(r)}" y2="${y(r)}" stroke="${r === 1 ? "#333" : "#e3e3e3"}"/>`);
    out.push(`<text x="${left - 6}" y="${y(r) + 4}" text-anchor="end" fill="#555">${r.toFixed(2)}×</text>`);
  }
  groups.forEach((g, gi) => {
    const x0 = left + gi * groupW + gap / 2;
    g.bars.forEach((b) => {
      const si = series.indexOf(b.series);
      const x = x0 + si * barW;
      const h = Math.max(0, top + plotH - y(b.ratio));
      out.push(`<rect x="${x}" y="${y(b.ratio)}" width="${barW - 4}" height="${h}" fill="${COLORS[si % COLORS.length]}"/>`);
      out.push(`<text x="${x + (barW - 4) / 2}" y="${y(b.ratio) - 4}" text-anchor="middle" font-size="9">${esc(b.text)}</text>`);
    });
    if (g.target !== undefined) {
      out.push(`<line x1="${x0 - 4}" x2="${x0 + series.length * barW}" y1="${y(g.target)}" y2="${y(g.target)}" stroke="#d62728" stroke-dasharray="4 3"/>`);
    }
    out.push(`<text x="${x0 + (series.length * barW) / 2}" y="${top + plotH + 16}" text-anchor="middle">${esc(g.label)}</text>`);
  });
  series.forEach((s, si) => {
    const x = left + si * 130;
    out.push(`<rect x="${x}" y="${height - 28}" width="12" height="12" fill="${COLORS[si % COLORS.length]}"/>`);
    out.push(`<text x="${x + 18}" y="${height - 18}">${esc(s)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
