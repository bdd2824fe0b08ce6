using System.Text.Json;
using CommandLine;
using PrunerZero.Kernels;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;
using PrunerZero.Workflows;

namespace PrunerZero.Cli;

[Verb("prune", HelpText = "Prune a checkpoint with a metric and save it in Hugging Face layout.")]
public sealed class PruneOptions : PruneOptionsBase
{
    [Option("metric", Required = true, HelpText = "An expression such as mul(sqr(W), mms(G)), or magnitude | wanda | pruner-zero | sparsegpt.")]
    public string Metric { get; set; } = "";

    [Option("out", Required = true, HelpText = "Output folder for the pruned checkpoint.")]
    public string Out { get; set; } = "";

    [Option("eval", HelpText = "Evaluate the pruned model's perplexity.")]
    public bool Eval { get; set; }

    [Option("json", HelpText = "Print one JSON object on stdout.")]
    public bool Json { get; set; }
}

public static class PruneCommand
{
    public static int Run(PruneOptions o)
    {
        var metric = o.ParseMethod(o.Metric);
        var target = o.Target();
        // The evaluation options only act with --eval: refused without it, never ignored.
        if (!o.Eval && o.Windows is not null) throw new PrunerZeroException("--windows applies to --eval, which is not given");
        if (!o.Eval && o.Dataset is not null) throw new PrunerZeroException("--dataset applies to --eval, which is not given");
        // Before anything is loaded: never write over the input, and an unwritable --out fails now, not after the work.
        PathSafety.NotTheInput(o.Out, Defaults.Model(o.Model), "--out");
        // The one output rule (VerbPaths): --out is no input and holds no other checkpoint; --cache is no input either.
        var paths = CliPaths.Pruning(o);
        CliPaths.Cache(paths, o);
        paths.OutputCheckpoint("--out", o.Out);
        o.Preflight(target);
        var zeroShotTasks = o.LoadZeroShotTasks();
        var progress = new ProgressLine();
        var log = new ProgressAwareWriter(progress, Console.Error);
        using var backend = o.Backend();
        using var session = new PruneSession(o.Session(), log, progress);
        var report = session.Prune(metric, target, backend);
        progress.Done();
        if (!report.Valid) throw new PrunerZeroException($"metric {metric} is invalid: {report.InvalidReason}");

        foreach (var l in report.Layers) Console.Error.WriteLine($"  {l.Name,-40} sparsity {l.Sparsity:0.0000}");
        Console.Error.WriteLine($"overall sparsity {report.Overall:0.0000} ({target}); scoring {report.ScoreSeconds:0.00} s, masking {report.MaskSeconds:0.00} s, forward {report.ForwardSeconds:0.00} s");

        var dtype = SafeTensors.ScalarTypeOf(session.Model.Config.TorchDtype);
        Checkpoint.Save(session.Model, o.Out, session.Options.ModelDir, dtype, new Dictionary<string, string>
        {
            ["pruned_with"] = metric.ToString(), ["target"] = target.ToString(), ["protocol"] = $"model={session.Options.ModelDir} {session.Protocol(target)}",
        });
        Console.Error.WriteLine($"saved {o.Out} ({session.Model.Config.TorchDtype})");

        PerplexityResult? ppl = null;
        if (o.Eval)
        {
            ppl = session.Evaluate();
            progress.Done();
        }
        Runtime.ZeroShot.ZeroShotReport? zs = null;
        if (zeroShotTasks != null)
        {
            zs = Runtime.ZeroShot.ZeroShotEvaluator.Run(session.Model, session.Tokenizer, zeroShotTasks, o.ZeroShotLimit, progress);
            progress.Done();
            Console.Error.WriteLine(zs.Describe());
        }
        if (o.Json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                metric = metric.ToString(), target = target.ToString(), allocation = session.AllocationFor(target)?.ToString() ?? "uniform", protocol = $"model={session.Options.ModelDir} {session.Protocol(target)}",
                sparsity = report.Overall, layers = report.Layers.ToDictionary(l => l.Name, l => l.Sparsity),
                perplexity = JsonNumbers.Finite(ppl?.Perplexity), bits_per_byte = JsonNumbers.Finite(ppl?.BitsPerByte),
                perplexity_note = JsonNumbers.Note("perplexity", ppl?.Perplexity), windows = ppl?.Windows, out_dir = o.Out,
                zeroshot_mean_acc = zs?.MeanAcc, zeroshot_tasks = zeroShotTasks?.Select(t => t.Name), zeroshot_limit = o.ZeroShotLimit,
            }));
        }
        else
        {
            string allocation = session.Options.Allocation.IsUniform ? "" : $" allocation={session.Options.Allocation.Id}";
            string pruning = $"metric={metric} target={target}{allocation} {session.Calibration.Describe()}";
            Console.WriteLine($"pruned {session.Options.ModelDir} with {metric} to {report.Overall:0.0000} ({target}{allocation}) -> {o.Out}; {session.Calibration.Describe()}");
            if (ppl != null) Console.WriteLine($"{ppl.Describe()} {pruning}");
            if (zs != null) Console.WriteLine($"zero-shot mean acc {zs.MeanAcc:0.0000} over {zs.Tasks.Count} tasks ({string.Join(",", zeroShotTasks!.Select(t => t.Name))}){(o.ZeroShotLimit is int l ? $" (first {l} items each)" : "")} {pruning}");
        }
        return 0;
    }
}
