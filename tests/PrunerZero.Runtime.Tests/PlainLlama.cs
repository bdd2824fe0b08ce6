using PrunerZero.Runtime;

namespace PrunerZero.Runtime.Tests;

/// <summary>
/// The HF LlamaForCausalLM forward written plainly, in double precision loops with no TorchSharp, to check
/// the engine's forward against. Weights are read out of a loaded model as float arrays.
/// </summary>
public sealed class PlainLlama(LlamaModel m)
{
    readonly LlamaConfig c = m.Config;

    static double[] W(TorchSharp.torch.Tensor t) => TestCheckpoints.Floats(t).Select(x => (double)x).ToArray();

    static double[][] Linear(double[][] x, double[] w, int outDim)
    {
        int inDim = x[0].Length;
        return x.Select(row =>
        {
            var y = new double[outDim];
            for (int o = 0; o < outDim; o++)
            {
                double s = 0;
                for (int i = 0; i < inDim; i++) s += w[o * inDim + i] * row[i];
                y[o] = s;
            }
            return y;
        }).ToArray();
    }

    double[][] RmsNorm(double[][] x, double[] w) => x.Select(row =>
    {
        double ms = row.Select(v => v * v).Average();
        double r = 1 / Math.Sqrt(ms + c.RmsNormEps);
        return row.Select((v, i) => w[i] * v * r).ToArray();
    }).ToArray();

    /// <summary>Rotate-half RoPE on one head's vector at position p.</summary>
    double[] Rope(double[] v, int p)
    {
        int d = v.Length, half = d / 2;
        var outv = new double[d];
        for (int i = 0; i < half; i++)
        {
            double freq = 1.0 / Math.Pow(c.RopeTheta, 2.0 * i / d);
            double ang = p * freq, cos = Math.Cos(ang), sin = Math.Sin(ang);
            outv[i] = v[i] * cos - v[i + half] * sin;
            outv[i + half] = v[i + half] * cos + v[i] * sin;
        }
        return outv;
    }

    public double[][] Logits(int[] ids)
    {
        int t = ids.Length, C = c.HiddenSize, D = c.HeadDim, H = c.NumHeads, KV = c.NumKvHeads, F = c.IntermediateSize;
        var embed = W(m.Embed);
        var h = ids.Select(id => Enumerable.Range(0, C).Select(j => embed[id * C + j]).ToArray()).ToArray();
        foreach (var b in m.Blocks)
        {
            var x = RmsNorm(h, W(b.InputNorm));
            var q = Linear(x, W(b.Q), H * D);
            var k = Linear(x, W(b.K), KV * D);
            var v = Linear(x, W(b.V), KV * D);
            var attn = new double[t][];
            for (int p = 0; p < t; p++) attn[p] = new double[H * D];
            for (int head = 0; head < H; head++)
            {
                int kvh = head / (H / KV);  // GQA: consecutive query heads share a key/value head
                for (int p = 0; p < t; p++)
                {
                    var qp = Rope(q[p].Skip(head * D).Take(D).ToArray(), p);
                    var scores = new double[p + 1];
                    for (int s = 0; s <= p; s++)
                    {
                        var ks = Rope(k[s].Skip(kvh * D).Take(D).ToArray(), s);
                        scores[s] = qp.Zip(ks, (a, bb) => a * bb).Sum() / Math.Sqrt(D);
                    }
                    double mx = scores.Max();
                    var e = scores.Select(z => Math.Exp(z - mx)).ToArray();
                    double z = e.Sum();
                    for (int s = 0; s <= p; s++)
                        for (int j = 0; j < D; j++) attn[p][head * D + j] += e[s] / z * v[s][kvh * D + j];
                }
            }
            var o = Linear(attn, W(b.O), C);
            h = h.Select((row, p) => row.Select((val, j) => val + o[p][j]).ToArray()).ToArray();
            x = RmsNorm(h, W(b.PostNorm));
            var g = Linear(x, W(b.Gate), F);
            var u = Linear(x, W(b.Up), F);
            var act = g.Select((row, p) => row.Select((val, j) => val / (1 + Math.Exp(-val)) * u[p][j]).ToArray()).ToArray();
            var dn = Linear(act, W(b.Down), C);
            h = h.Select((row, p) => row.Select((val, j) => val + dn[p][j]).ToArray()).ToArray();
        }
        return Linear(RmsNorm(h, W(m.Norm)), W(m.LmHead), c.VocabSize);
    }

    /// <summary>Sum of next-token NLL over the sequence.</summary>
    public double SumNll(int[] ids)
    {
        var logits = Logits(ids);
        double s = 0;
        for (int p = 0; p + 1 < ids.Length; p++)
        {
            double mx = logits[p].Max();
            double lse = mx + Math.Log(logits[p].Sum(z => Math.Exp(z - mx)));
            s += lse - logits[p][ids[p + 1]];
        }
        return s;
    }
}
