using CommandLine;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Training;
using PrunerZero.Runtime.ZeroShot;

namespace PrunerZero.Cli;

[Verb("zeroshot", HelpText = "Zero-shot accuracy (acc, acc_norm) on BoolQ, RTE, HellaSwag, WinoGrande, ARC-e/c, OpenBookQA, as lm-evaluation-harness computes it.")]
public sealed class ZeroShotOptions
{
    [Option("model", HelpText = "Checkpoint folder in Hugging Face layout (default: the embedded model).")]
    public string? Model { get; set; }

    [Option("tasks", Separator = ',', HelpText = "Comma-separated tasks, each NAME or NAME=FILE (default: all: boolq,rte,hellaswag,winogrande,arc_easy,arc_challenge,openbookqa).")]
    public IEnumerable<string>? Tasks { get; set; }

    [Option("limit", HelpText = "Evaluate only the first N items of each task (the harness's --limit).")]
    public int? Limit { get; set; }

    [Option("data", HelpText = "Folder of the task files (default: the shipped data/zeroshot).")]
    public string? Data { get; set; }

    [Option("bos", HelpText = "Put BOS in front of every request (the harness's add_bos_token=True; its default, and the papers', is no BOS).")]
    public bool Bos { get; set; }

    [Option("batch-tokens", Default = ZeroShotEvaluator.DefaultBatchTokens, HelpText = "Budget of B·T tokens per forward (at least one whole item is batched).")]
    public int BatchTokens { get; set; }

    [Option("adapter", HelpText = "A LoRA adapter folder in PEFT's layout (adapter_config.json, adapter_model.safetensors) applied as PEFT applies it (W·x + alpha/r·B·A·x); for the sparse model an adapter was trained as on a pruned base, evaluate finetune's --merge masked output instead.")]
    public string? Adapter { get; set; }

    [Option("json", HelpText = "Print one JSON object on stdout.")]
    public bool Json { get; set; }
}

public static class ZeroShotCommand
{
    public const string DataDir = "data/zeroshot";

    public static int Run(ZeroShotOptions o)
    {
        if (o.Limit is <= 0) throw new PrunerZeroException($"--limit must be positive, got {o.Limit}");
        if (o.BatchTokens <= 0) throw new PrunerZeroException($"--batch-tokens must be positive, got {o.BatchTokens}");
        string modelDir = Defaults.Model(o.Model);
        CliPaths.TaskFiles(new VerbPaths().InputFolder("--model", modelDir).InputFolder("--adapter", o.Adapter).InputFolder("--data", o.Data), "--tasks", o.Tasks);
        var progress = new ProgressLine();
        var config = LlamaConfig.Load(Path.Combine(Checkpoint.RequireDirectoryAnd(modelDir), "config.json"));
        var tokenizer = TextTokenizer.Load(modelDir, config);
        var tasks = LoadTasks(o.Tasks, o.Data);          // refuse bad task names or files before loading weights

        using var model = Checkpoint.Load(modelDir, progress);
        using var adapter = o.Adapter is null ? null : LoraAdapters.Load(o.Adapter, model);
        adapter?.Attach(model);
        var report = ZeroShotEvaluator.Run(model, tokenizer, tasks, o.Limit, progress, o.Bos, o.BatchTokens);
        progress.Done();
        if (o.Json)
        {
            var json = report.ToJson();
            json["model"] = modelDir;
            json["adapter"] = o.Adapter;
            json["bos"] = o.Bos;
            json["batch_tokens"] = o.BatchTokens;
            Console.WriteLine(json.ToJsonString());
        }
        else
        {
            Console.WriteLine($"model={modelDir}{(o.Adapter is null ? "" : $" adapter={o.Adapter}")} bos={(o.Bos ? "yes" : "no")} batch_tokens={o.BatchTokens}");
            Console.WriteLine(report.Describe());
        }
        return 0;
    }

    /// <summary>
    /// Tasks by name (null or empty: all), from <paramref name="dataDir"/> or the shipped data/zeroshot. For
    /// `prune --zeroshot` and `score --zeroshot`: load once, then call <see cref="ZeroShotEvaluator.Run"/> per model state.
    /// </summary>
    public static IReadOnlyList<ZeroShotTask> LoadTasks(IEnumerable<string>? names = null, string? dataDir = null)
    {
        var list = names?.Where(n => !string.IsNullOrWhiteSpace(n)).ToList();
        if (list is null || list.Count == 0) list = [.. ZeroShotTasks.All];
        // The shipped folder is only needed when some task has no explicit NAME=FILE.
        string dir = dataDir ?? (list.All(n => n.Contains('=')) ? "" : Defaults.Find(DataDir));
        return ZeroShotTasks.Load(dir, list);
    }
}
