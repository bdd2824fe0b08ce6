// Before timing anything: run (a) and (b) once per case and compare their masks, so the table compares two
// paths that compute the same thing (and a TorchSharp op is known to run). Differences are expected only
// where the two score formulas round differently (mms as (x−min)·(1/range) vs (x−min)/range; zsn with the
// population vs torch's unbiased std), which can swap near-equal weights at the cut.
using System.Globalization;
using System.Text;
using PrunerZero.Kernels;
using TorchSharp;

namespace PrunerZero.Bench.Reference;

public static class MaskAgreement
{
    public static void Check(BenchOptions o, ResultsTable table)
    {
        var sb = new StringBuilder();
        sb.AppendLine("## Mask agreement between (a) and (b)");
        sb.AppendLine();
        sb.AppendLine("Each case run once before timing; a weight differs when one path prunes it and the other keeps it.");
        sb.AppendLine();
        sb.AppendLine("| shape R×K | metric | weights differing | fraction | rows with exactly k pruned (a / b) |");
        sb.AppendLine("|---|---|---:|---:|---|");
        foreach (var shape in o.Shapes)
        foreach (var metric in o.Metrics)
        {
            var e = BenchMetrics.Get(metric);
            var d = LayerData.For(shape);
            int n = (int)shape.Count, k = Masks.PrunedPerRow(shape.Cols, o.Sparsity);
            var scores = new float[n];
            var a = new byte[n];
            CpuFusedScorer.Score(e, d.W, d.G, d.X, shape.Rows, shape.Cols, scores);
            Masks.Unstructured(scores, shape.Rows, shape.Cols, o.Sparsity, a);
            scores = null;

            var b = new byte[n];
            using (var scope = torch.NewDisposeScope())
            using (var noGrad = torch.no_grad())
            {
                var weight = torch.tensor(d.W, [shape.Rows, shape.Cols]);
                var g = torch.tensor(d.G, [shape.Rows, shape.Cols]);
                var x = torch.tensor(d.X, [1, shape.Cols]);
                var mask = TorchMetric.ScoreAndMask(e, weight, g, x, o.Sparsity);
                mask.to_type(torch.ScalarType.Byte).data<byte>().CopyTo(b);
            }

            long diff = 0;
            int rowsA = 0, rowsB = 0;
            for (int r = 0; r < shape.Rows; r++)
            {
                int ca = 0, cb = 0;
                for (int c = r * shape.Cols, end = c + shape.Cols; c < end; c++)
                {
                    ca += a[c]; cb += b[c];
                    if (a[c] != b[c]) diff++;
                }
                if (ca == k) rowsA++;
                if (cb == k) rowsB++;
            }
            string line = $"| {shape.Rows}×{shape.Cols} | {metric} | {diff} | {(diff / (double)n).ToString("G3", CultureInfo.InvariantCulture)} | {rowsA} / {rowsB} of {shape.Rows} |";
            Console.WriteLine($"mask agreement {shape} {metric}: {diff} of {n} weights differ; rows with k pruned: a {rowsA}, b {rowsB} of {shape.Rows}");
            sb.AppendLine(line);
        }
        table.Sections.Add(sb.ToString());
    }
}
