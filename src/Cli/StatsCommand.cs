using System.Globalization;
using System.Text;
using System.Text.Json;
using CommandLine;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;
using PrunerZero.Workflows;

namespace PrunerZero.Cli;

[Verb("stats", HelpText = "Outlier statistics on the calibration data: per block and linear the profile of Wanda's X, per block the first-token norms.")]
public sealed class StatsOptions : CalibrationOptions
{
    [Option("top", Default = 5, HelpText = "Channels listed per linear (largest share of its scaler_row sum).")]
    public int Top { get; set; }

    [Option("json", HelpText = "Print one JSON object on stdout.")]
    public bool Json { get; set; }

    [Option("csv", HelpText = "Also write one row per block and linear as CSV to this file.")]
    public string? Csv { get; set; }
}

public static class StatsCommand
{
    /// <summary>What each number is, printed with the tables and in the JSON.</summary>
    public static readonly Dictionary<string, string> Definitions = new()
    {
        ["scaler_row"] = "per input column j of a linear: sum over calibration tokens of x_j^2, divided by nsamples (Wanda's scaler_row, the X of the metrics)",
        ["max_over_median"] = "max_j scaler_row_j / median_j scaler_row_j",
        ["excess_kurtosis"] = "of the channel norms sqrt(scaler_row_j) over the columns j: m4 / m2^2 - 3 with population moments (0 for a Gaussian, about n for one heavy channel among n)",
        ["top"] = "the channels with the largest scaler_row_j, each with its share scaler_row_j / sum_j scaler_row_j",
        ["first_token_ratio"] = "of the residual hidden state a block outputs: mean over windows of the L2 norm at position 0, divided by the median L2 norm over every window and position >= 1",
        ["max_abs"] = "the largest |h| of the residual hidden state a block outputs, with its channel and position",
    };

    public static int Run(StatsOptions o)
    {
        if (o.NSamples <= 0) throw new PrunerZeroException($"--nsamples must be positive, got {o.NSamples}");
        if (o.Seqlen is < 2) throw new PrunerZeroException($"--seqlen must be at least 2, got {o.Seqlen}");
        if (o.Top < 1) throw new PrunerZeroException($"--top must be at least 1, got {o.Top}");
        // The one output rule (VerbPaths): --csv is none of the inputs (the model's files, the calibration text).
        if (o.Csv != null) CliPaths.Calibration(o).OutputFile("--csv", o.Csv);
        else CliPaths.Calibration(o);
        var sampling = o.Sampling();
        string modelDir = Defaults.Model(o.Model);
        string calibPath = o.CalibPath();
        var config = LlamaConfig.Load(Path.Combine(Checkpoint.RequireDirectoryAnd(modelDir), "config.json"));
        int seqlen = o.Seqlen ?? Perplexity.DefaultSeqlen(config);
        if (seqlen > config.MaxPositionEmbeddings)
            throw new PrunerZeroException($"--seqlen {seqlen} exceeds the model's max_position_embeddings {config.MaxPositionEmbeddings}");
        var tokenizer = TextTokenizer.Load(modelDir, config);
        var calib = CalibrationSet.Build(calibPath, tokenizer, o.NSamples, seqlen, sampling, o.CalibSeed);
        Corpus.CheckTokenIds(calib.Windows.SelectMany(w => w.Select(t => (int)t)), config.VocabSize, calibPath);
        long weightBytes = Checkpoint.TensorBytes(modelDir);
        Console.Error.WriteLine(MemoryPlan.For(config, weightBytes, o.NSamples, seqlen).Describe(withG: false));
        MemoryPlan.Check(config, weightBytes, o.NSamples, seqlen, withG: false, MemoryPlan.AvailableBytes());

        var progress = new ProgressLine();
        OutlierReport report;
        using (var model = Checkpoint.Load(modelDir, progress, keepDtype: true))
            report = OutlierStats.Compute(model, calib, o.Top, progress);
        progress.Done();

        string header = $"model={modelDir} data={Path.GetFileName(calibPath)} nsamples={calib.NSamples} seqlen={calib.Seqlen} sampling={sampling.ToString().ToLowerInvariant()}" +
                        (sampling == Runtime.Pruning.CalibSampling.Random ? $" seed={o.CalibSeed}" : "");
        if (o.Csv != null) File.WriteAllText(o.Csv, Csv(report, modelDir, calib));
        if (o.Json) Console.WriteLine(JsonSerializer.Serialize(Json(report, modelDir, calib)));
        else Console.Write(Text(report, header));
        return 0;
    }

    static string Name(LinearKind k) => k.ToString().ToLowerInvariant();
    static string F(double v, string f) => double.IsFinite(v) ? v.ToString(f, CultureInfo.InvariantCulture) : "-";
    static string Inv(double v) => double.IsFinite(v) ? v.ToString("R", CultureInfo.InvariantCulture) : "";

    static object Json(OutlierReport r, string modelDir, CalibrationSet calib) => new
    {
        model = modelDir, data = calib.Source, nsamples = calib.NSamples, seqlen = calib.Seqlen,
        sampling = calib.Sampling.ToString().ToLowerInvariant(), seed = calib.Seed, definitions = Definitions,
        blocks = r.Blocks.Select(b => new
        {
            layer = b.Layer,
            first_token_norm = JsonNumbers.Finite(b.Output.FirstNorm), other_median_norm = JsonNumbers.Finite(b.Output.OtherMedianNorm),
            first_token_ratio = JsonNumbers.Finite(b.Output.Ratio), max_abs = JsonNumbers.Finite(b.Output.MaxAbs),
            max_abs_channel = b.Output.MaxAbsChannel, max_abs_position = b.Output.MaxAbsPosition,
            linears = b.Linears.Select(l => new
            {
                name = Name(l.Kind), hf_name = l.Kind.HfName(), columns = l.Columns,
                scaler_max = JsonNumbers.Finite(l.Max), scaler_median = JsonNumbers.Finite(l.Median),
                max_over_median = JsonNumbers.Finite(l.MaxOverMedian), excess_kurtosis = JsonNumbers.Finite(l.ExcessKurtosis),
                top = l.Top.Select(t => new { channel = t.Channel, share = JsonNumbers.Finite(t.Share) }),
            }),
        }),
    };

    static string Text(OutlierReport r, string header)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"X profile per linear: {header}\n");
        sb.Append("  X = scaler_row: ").Append(Definitions["scaler_row"]).Append("\n  max/med: ").Append(Definitions["max_over_median"])
          .Append("\n  kurtosis: excess kurtosis ").Append(Definitions["excess_kurtosis"]).Append("\n  top: ").Append(Definitions["top"]).Append('\n');
        sb.Append($"{"block",5}  {"linear",-6} {"columns",7} {"max/med",10} {"kurtosis",10}  top channels (share of the scaler_row sum)\n");
        foreach (var b in r.Blocks)
            foreach (var l in b.Linears)
                sb.Append(CultureInfo.InvariantCulture,
                    $"{b.Layer,5}  {Name(l.Kind),-6} {l.Columns,7} {F(l.MaxOverMedian, "0.00"),10} {F(l.ExcessKurtosis, "0.00"),10}  {string.Join(", ", l.Top.Select(t => $"{t.Channel} ({F(100 * t.Share, "0.00")}%)"))}\n");
        sb.Append(CultureInfo.InvariantCulture, $"\nFirst-token norms of each block's output (residual stream): {header}\n");
        sb.Append("  ratio: ").Append(Definitions["first_token_ratio"]).Append("\n  max |h|: ").Append(Definitions["max_abs"]).Append('\n');
        sb.Append($"{"block",5} {"norm pos 0",12} {"median other",12} {"ratio",8} {"max |h|",10} {"channel",7} {"position",8}\n");
        foreach (var b in r.Blocks)
        {
            var f = b.Output;
            sb.Append(CultureInfo.InvariantCulture,
                $"{b.Layer,5} {F(f.FirstNorm, "0.000"),12} {F(f.OtherMedianNorm, "0.000"),12} {F(f.Ratio, "0.00"),8} {F(f.MaxAbs, "0.000"),10} {f.MaxAbsChannel,7} {f.MaxAbsPosition,8}\n");
        }
        return sb.ToString();
    }

    static string Csv(OutlierReport r, string modelDir, CalibrationSet calib)
    {
        static string Q(string s) => "\"" + s.Replace("\"", "\"\"") + "\"";
        var sb = new StringBuilder("model,data,nsamples,seqlen,layer,linear,columns,scaler_max,scaler_median,max_over_median,excess_kurtosis,top_channels," +
                                   "first_token_norm,other_median_norm,first_token_ratio,max_abs,max_abs_channel,max_abs_position\n");
        foreach (var b in r.Blocks)
            foreach (var l in b.Linears)
            {
                var f = b.Output;
                string top = string.Join(' ', l.Top.Select(t => $"{t.Channel}:{Inv(t.Share)}"));
                sb.Append(CultureInfo.InvariantCulture,
                    $"{Q(modelDir)},{Q(Path.GetFileName(calib.Source))},{calib.NSamples},{calib.Seqlen},{b.Layer},{Name(l.Kind)},{l.Columns},{Inv(l.Max)},{Inv(l.Median)},{Inv(l.MaxOverMedian)},{Inv(l.ExcessKurtosis)},{top}," +
                    $"{Inv(f.FirstNorm)},{Inv(f.OtherMedianNorm)},{Inv(f.Ratio)},{Inv(f.MaxAbs)},{f.MaxAbsChannel},{f.MaxAbsPosition}\n");
            }
        return sb.ToString();
    }
}
