using System.Text.Json.Nodes;
using PrunerZero.Runtime;

namespace PrunerZero.Runtime.Tests;

/// <summary>
/// The forward of the four families as transformers' modeling files write it (modeling_llama.py, modeling_mistral.py,
/// modeling_qwen2.py, modeling_qwen3.py, and modeling_rope_utils.py for the inverse frequencies), in double
/// precision loops with no TorchSharp math, reading config.json's keys and the safetensors tensors by their
/// Hugging Face names itself: nothing of the product's config parsing, loading or forward is used.
/// </summary>
public sealed class PlainDecoder
{
    readonly Dictionary<string, double[]> w = [];
    readonly JsonObject cfg;
    readonly string type;
    readonly int C, F, H, KV, D, L, V;
    readonly double eps;
    public readonly double[] InvFreq;

    public PlainDecoder(string dir)
    {
        cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        type = (string)cfg["model_type"]!;
        C = (int)cfg["hidden_size"]!; F = (int)cfg["intermediate_size"]!; H = (int)cfg["num_attention_heads"]!;
        KV = (int?)cfg["num_key_value_heads"] ?? H; L = (int)cfg["num_hidden_layers"]!; V = (int)cfg["vocab_size"]!;
        D = (int?)cfg["head_dim"] ?? (type == "qwen3" ? 128 : C / H);
        eps = (double?)cfg["rms_norm_eps"] ?? 1e-6;
        var (entries, start) = SafeTensors.ReadHeader(Path.Combine(dir, "model.safetensors"));
        foreach (var e in entries)
        {
            using var t = SafeTensors.Read(e, start);
            w[e.Name] = [.. TestCheckpoints.Floats(t).Select(x => (double)x)];
        }
        InvFreq = InverseFrequencies(cfg, D);
    }

    /// <summary>modeling_rope_utils.py: default, linear and llama3 inverse frequencies, in double.</summary>
    public static double[] InverseFrequencies(JsonObject cfg, int d)
    {
        double theta = (double?)cfg["rope_theta"] ?? 10000;
        var inv = Enumerable.Range(0, d / 2).Select(i => 1.0 / Math.Pow(theta, 2.0 * i / d)).ToArray();
        if (cfg["rope_scaling"] is not JsonObject rs) return inv;
        double factor = (double)rs["factor"]!;
        if (((string?)rs["rope_type"] ?? (string?)rs["type"]) == "linear") return [.. inv.Select(f => f / factor)];
        double low = (double)rs["low_freq_factor"]!, high = (double)rs["high_freq_factor"]!, old = (double)rs["original_max_position_embeddings"]!;
        return [.. inv.Select(f =>
        {
            double wavelen = 2 * Math.PI / f;
            if (wavelen < old / high) return f;                      // high frequencies: kept
            if (wavelen > old / low) return f / factor;              // low frequencies: divided by factor
            double smooth = (old / wavelen - low) / (high - low);    // between: interpolated
            return (1 - smooth) * f / factor + smooth * f;
        })];
    }

    /// <summary>The sliding window of layer i: Mistral on every layer; Qwen only with use_sliding_window, from max_window_layers on (or per layer_types).</summary>
    int? Window(int layer)
    {
        int? sw = (int?)cfg["sliding_window"];
        if (type == "mistral") return sw;
        if (type is "qwen2" or "qwen3" && (bool?)cfg["use_sliding_window"] == true)
        {
            bool sliding = cfg["layer_types"] is JsonArray lt ? (string)lt[layer]! == "sliding_attention" : layer >= ((int?)cfg["max_window_layers"] ?? 28);
            return sliding ? sw ?? 4096 : null;
        }
        return null;
    }

    double[]? Opt(string name) => w.TryGetValue(name, out var t) ? t : null;

    static double[][] Linear(double[][] x, double[] wt, double[]? bias, int outDim)
    {
        int inDim = x[0].Length;
        return [.. x.Select(row =>
        {
            var y = new double[outDim];
            for (int o = 0; o < outDim; o++)
            {
                double s = bias?[o] ?? 0;
                for (int i = 0; i < inDim; i++) s += wt[o * inDim + i] * row[i];
                y[o] = s;
            }
            return y;
        })];
    }

    double[] Norm(double[] row, double[] wt)
    {
        double r = 1 / Math.Sqrt(row.Select(v => v * v).Average() + eps);
        return [.. row.Select((v, i) => wt[i] * v * r)];
    }

    double[] Rope(double[] v, int p)
    {
        int half = D / 2;
        var o = new double[D];
        for (int i = 0; i < half; i++)
        {
            double a = p * InvFreq[i], cos = Math.Cos(a), sin = Math.Sin(a);
            o[i] = v[i] * cos - v[i + half] * sin;
            o[i + half] = v[i + half] * cos + v[i] * sin;
        }
        return o;
    }

    public double[][] Logits(int[] ids)
    {
        int t = ids.Length;
        var embed = w["model.embed_tokens.weight"];
        var h = ids.Select(id => embed.Skip(id * C).Take(C).ToArray()).ToArray();
        for (int l = 0; l < L; l++)
        {
            string p = $"model.layers.{l}.";
            double[] W(string n) => w[p + n + ".weight"];
            double[]? B(string n) => Opt(p + n + ".bias");
            var x = h.Select(r => Norm(r, W("input_layernorm"))).ToArray();
            var q = Linear(x, W("self_attn.q_proj"), B("self_attn.q_proj"), H * D);
            var k = Linear(x, W("self_attn.k_proj"), B("self_attn.k_proj"), KV * D);
            var v = Linear(x, W("self_attn.v_proj"), B("self_attn.v_proj"), KV * D);
            var qn = Opt(p + "self_attn.q_norm.weight");
            var kn = Opt(p + "self_attn.k_norm.weight");
            double[] Head(double[] row, int head, double[]? norm, int pos)
            {
                var hv = row.Skip(head * D).Take(D).ToArray();
                return Rope(norm is null ? hv : Norm(hv, norm), pos);
            }
            int? window = Window(l);
            var attn = new double[t][];
            for (int i = 0; i < t; i++) attn[i] = new double[H * D];
            for (int head = 0; head < H; head++)
            {
                int kvh = head / (H / KV);
                for (int i = 0; i < t; i++)
                {
                    var qi = Head(q[i], head, qn, i);
                    var visible = Enumerable.Range(0, i + 1).Where(j => window is not int win || i - j < win).ToArray();
                    var scores = visible.Select(j => qi.Zip(Head(k[j], kvh, kn, j), (a, b) => a * b).Sum() / Math.Sqrt(D)).ToArray();
                    double mx = scores.Max();
                    var e = scores.Select(z => Math.Exp(z - mx)).ToArray();
                    double z = e.Sum();
                    for (int s = 0; s < visible.Length; s++)
                        for (int j = 0; j < D; j++) attn[i][head * D + j] += e[s] / z * v[visible[s]][kvh * D + j];
                }
            }
            var o = Linear(attn, W("self_attn.o_proj"), B("self_attn.o_proj"), C);
            h = [.. h.Select((row, i) => row.Select((val, j) => val + o[i][j]).ToArray())];
            x = [.. h.Select(r => Norm(r, W("post_attention_layernorm")))];
            var g = Linear(x, W("mlp.gate_proj"), B("mlp.gate_proj"), F);
            var u = Linear(x, W("mlp.up_proj"), B("mlp.up_proj"), F);
            var act = g.Select((row, i) => row.Select((val, j) => val / (1 + Math.Exp(-val)) * u[i][j]).ToArray()).ToArray();
            var dn = Linear(act, W("mlp.down_proj"), B("mlp.down_proj"), C);
            h = [.. h.Select((row, i) => row.Select((val, j) => val + dn[i][j]).ToArray())];
        }
        bool tied = (bool?)cfg["tie_word_embeddings"] ?? false;
        return Linear([.. h.Select(r => Norm(r, w["model.norm.weight"]))], tied ? embed : w["lm_head.weight"], null, V);
    }
}
