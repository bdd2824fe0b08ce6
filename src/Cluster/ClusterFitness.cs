// The search's side: an Orleans client that finds the workers, checks their protocol, and evaluates each
// candidate on a free worker. Implements IFitness, so the search does not know it is distributed.
//
// Dispatch: a candidate takes a free worker (one evaluation per worker at a time), starts a job there and
// polls it. A worker that stops answering (killed, machine gone) or leaves the membership is dropped and
// the candidate goes to another worker; a result is taken once, from the job that finished it, so a
// candidate is never lost and never counted twice. Results do not depend on which worker evaluated what
// as long as the workers' protocols agree, which is checked before a worker gets any work.
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans;
using Orleans.Configuration;
using Orleans.Runtime;
using PrunerZero.Kernels;
using PrunerZero.Search;

namespace PrunerZero.Cluster;

/// <summary>No worker answered within the wait: the search cannot go on (a user-facing condition).</summary>
public sealed class ClusterUnavailableException(string message) : UserError(message);

/// <summary>A worker's fitness threw (the machinery failed, not the metric): the search stops, as it does in one process.</summary>
public sealed class WorkerFailedException(string message) : InvalidOperationException(message);

public sealed record ClusterFitnessOptions
{
    public required ClusterSpec Spec { get; init; }
    /// <summary>Protocol every worker must announce (see <see cref="ProtocolId"/>).</summary>
    public required string Protocol { get; init; }
    /// <summary>Candidates evaluated concurrently: the search's batch B.</summary>
    public required int Batch { get; init; }
    /// <summary>How long to wait for a gateway, and later for a usable worker, before failing.</summary>
    public TimeSpan Wait { get; init; } = TimeSpan.FromMinutes(5);
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(100);
    public TimeSpan CallTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>A worker that has not answered for this long is dropped even if the membership still lists it.</summary>
    public TimeSpan LostAfter { get; init; } = TimeSpan.FromSeconds(30);
}

public sealed class ClusterFitness : IFitness, IDisposable
{
    sealed class Worker(string key, IWorkerGrain grain, WorkerInfo info)
    {
        public string Key { get; } = key;
        public IWorkerGrain Grain { get; } = grain;
        public WorkerInfo Info { get; } = info;
        public int Done;
        public double BusySeconds;
        public bool Busy;
        public bool Lost;
    }

    readonly ClusterFitnessOptions _o;
    readonly IHost _host;
    readonly IClusterClient _client;
    readonly TextWriter _log;
    readonly Lock _lock = new();
    readonly Dictionary<string, Worker> _workers = new(StringComparer.Ordinal);   // accepted, by silo key
    readonly HashSet<string> _refused = new(StringComparer.Ordinal);
    readonly HashSet<string> _announcedLoading = new(StringComparer.Ordinal);
    readonly SemaphoreSlim _changed = new(0);
    readonly CancellationTokenSource _stop = new();
    readonly Stopwatch _clock = Stopwatch.StartNew();
    readonly Task _discovery;
    int _total;

    ClusterFitness(ClusterFitnessOptions o, IHost host, TextWriter log)
    {
        _o = o;
        _host = host;
        _client = host.Services.GetRequiredService<IClusterClient>();
        _log = log;
        _discovery = Task.Run(DiscoverLoop);
    }

    /// <summary>Joins the cluster as a client, waiting up to <see cref="ClusterFitnessOptions.Wait"/> for a gateway, then for one usable worker.</summary>
    public static ClusterFitness Connect(ClusterFitnessOptions o, TextWriter log, CancellationToken ct)
    {
        // The search's Parallel.ForEach blocks one pool thread per candidate in flight; Orleans needs free ones.
        ThreadPool.GetMinThreads(out int wt, out int io);
        ThreadPool.SetMinThreads(Math.Max(wt, 2 * o.Batch + 8), io);
        var deadline = DateTime.UtcNow + o.Wait;
        bool said = false;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
            WorkerHost.ClientLogging(builder.Logging);
            builder.UseOrleansClient(c =>
            {
                o.Spec.ConfigureClient(c);
                c.Configure<ClientMessagingOptions>(m => m.ResponseTimeout = o.CallTimeout);
                c.Configure<GatewayOptions>(g => g.GatewayListRefreshPeriod = TimeSpan.FromSeconds(5));
            });
            var host = builder.Build();
            try
            {
                using var attempt = CancellationTokenSource.CreateLinkedTokenSource(ct);
                attempt.CancelAfter(TimeSpan.FromSeconds(Math.Clamp((deadline - DateTime.UtcNow).TotalSeconds, 1, 10)));   // a first attempt can hang while the silos settle; the next one connects
                host.StartAsync(attempt.Token).GetAwaiter().GetResult();
                var f = new ClusterFitness(o, host, log);
                f.WaitForWorker(ct);
                return f;
            }
            catch (Exception e) when (e is not ClusterUnavailableException && !ct.IsCancellationRequested)
            {
                host.Dispose();
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero)
                    throw new ClusterUnavailableException(
                        $"no worker reachable at {o.Spec} within {o.Wait.TotalSeconds:0} s (start workers with `prunerzero worker --cluster {o.Spec}`)");
                if (!said)
                {
                    log.WriteLine($"cluster: waiting for a gateway at {o.Spec} (none answers yet: {WorkerHost.FirstLine(e.Message)}); giving up in {left.TotalSeconds:0} s");
                    said = true;
                }
                Thread.Sleep(TimeSpan.FromSeconds(Math.Min(1, left.TotalSeconds)));
            }
        }
    }

    public string Protocol => $"cluster: {_o.Protocol}";
    public int MaxParallelism => _o.Batch;

    public FitnessResult Screen(Expr metric, CancellationToken ct) => Evaluate(metric, full: false, double.PositiveInfinity, ct);
    /// <summary>The worker screens against the bar and stops early as this process would (the same fitness).</summary>
    public FitnessResult Screen(Expr metric, double bar, CancellationToken ct) => Evaluate(metric, full: false, bar, ct);
    public FitnessResult Full(Expr metric, CancellationToken ct) => Evaluate(metric, full: true, double.PositiveInfinity, ct);

    /// <summary>Evaluations and rate per worker so far, one line.</summary>
    public string Rates()
    {
        lock (_lock)
        {
            double t = Math.Max(1e-9, _clock.Elapsed.TotalSeconds);
            var per = _workers.Values.OrderBy(w => w.Info.Name, StringComparer.Ordinal)
                .Select(w => string.Create(CultureInfo.InvariantCulture, $"{w.Info.Name} {w.Done} ({w.Done / t:0.00}/s){(w.Lost ? " lost" : "")}"));
            return string.Create(CultureInfo.InvariantCulture, $"workers: {_total} evaluations, {_total / t:0.00}/s in total; ") + string.Join(", ", per);
        }
    }

    FitnessResult Evaluate(Expr metric, bool full, double bar, CancellationToken ct)
    {
        string text = metric.ToString();
        while (true)
        {
            var w = Acquire(ct);
            var job = Guid.NewGuid();
            var sw = Stopwatch.StartNew();
            try
            {
                var lastAnswer = Stopwatch.StartNew();
                bool started = false;
                while (true)
                {
                    // A call that fails is retried (Start is idempotent) until the worker leaves the membership
                    // or has not answered for LostAfter: one slow answer on a loaded machine is not a dead worker.
                    try
                    {
                        if (!started) { Call(w.Grain.Start(job, text, full, bar), ct); started = true; lastAnswer.Restart(); }
                        Thread.Sleep(_o.PollInterval);
                        var s = Call(w.Grain.Poll(job), ct);
                        lastAnswer.Restart();
                        if (s.Status is JobStatus.Queued or JobStatus.Running) continue;
                        if (s.Status == JobStatus.Unknown) throw new LostJobException("the worker does not know the job (restarted?)");
                        if (s.Status == JobStatus.Failed)
                        {
                            Release(w, sw.Elapsed.TotalSeconds, counted: false);
                            throw new WorkerFailedException($"worker {w.Info.Name} failed to evaluate {text}: {s.Failure}");
                        }
                        Release(w, sw.Elapsed.TotalSeconds, counted: true);
                        _log.WriteLine(Rates());
                        return s.Result() with { Worker = w.Info.Name };
                    }
                    catch (Exception e) when (e is not (WorkerFailedException or LostJobException or OperationCanceledException))
                    {
                        if (w.Lost || e is SiloUnavailableException || lastAnswer.Elapsed > _o.LostAfter) throw new LostJobException(e.Message, e);
                    }
                }
            }
            catch (LostJobException e) { Lose(w, e.InnerException ?? e); }
        }
    }

    sealed class LostJobException(string message, Exception? inner = null) : Exception(message, inner);

    T Call<T>(Task<T> call, CancellationToken ct) => call.WaitAsync(_o.CallTimeout, ct).GetAwaiter().GetResult();
    void Call(Task call, CancellationToken ct) => call.WaitAsync(_o.CallTimeout, ct).GetAwaiter().GetResult();

    Worker Acquire(CancellationToken ct)
    {
        var since = DateTime.UtcNow;
        bool said = false;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            lock (_lock)
            {
                var free = _workers.Values.Where(w => !w.Busy && !w.Lost).OrderBy(w => w.Done).ThenBy(w => w.Key, StringComparer.Ordinal).FirstOrDefault();
                if (free is not null) { free.Busy = true; return free; }
                if (_workers.Values.Any(w => !w.Lost)) since = DateTime.UtcNow;   // all busy: wait without a deadline
            }
            var waited = DateTime.UtcNow - since;
            if (waited >= _o.Wait)
                throw new ClusterUnavailableException($"no usable worker at {_o.Spec} for {_o.Wait.TotalSeconds:0} s ({RefusedSummary()}); resume with {UserError.P("resume")} once workers run");
            if (!said && waited > TimeSpan.FromSeconds(1))
            {
                _log.WriteLine($"cluster: waiting for a worker at {_o.Spec} ({RefusedSummary()}); giving up in {(_o.Wait - waited).TotalSeconds:0} s");
                said = true;
            }
            _changed.Wait(TimeSpan.FromMilliseconds(250), ct);
        }
    }

    void WaitForWorker(CancellationToken ct)
    {
        var w = Acquire(ct);
        lock (_lock) w.Busy = false;
        _changed.Release();
    }

    string RefusedSummary()
    {
        lock (_lock)
            return $"{_workers.Values.Count(w => !w.Lost)} usable, {_refused.Count} refused, {_workers.Values.Count(w => w.Lost)} lost";
    }

    void Release(Worker w, double seconds, bool counted)
    {
        lock (_lock)
        {
            w.Busy = false;
            if (counted) { w.Done++; _total++; w.BusySeconds += seconds; }
        }
        _changed.Release();
    }

    void Lose(Worker w, Exception e)
    {
        lock (_lock)
        {
            w.Lost = true;
            w.Busy = false;
        }
        _log.WriteLine($"cluster: lost worker {w.Info.Name} ({e.GetType().Name}: {WorkerHost.FirstLine(e.Message)}); its candidate goes to another worker");
        _changed.Release();
    }

    async Task DiscoverLoop()
    {
        var mgmt = _client.GetGrain<IManagementGrain>(0);
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var hosts = await mgmt.GetHosts(onlyActive: true).WaitAsync(_o.CallTimeout, _stop.Token);
                var tasks = new List<Task>();
                foreach (var silo in hosts.Keys)
                {
                    string key = silo.ToParsableString();
                    lock (_lock)
                        if (_refused.Contains(key) || _workers.TryGetValue(key, out var known) && !known.Lost) continue;
                    tasks.Add(Probe(key));
                }
                await Task.WhenAll(tasks);
                // Members that left: their in-flight candidate fails its next poll and moves on; mark them here too.
                lock (_lock)
                    foreach (var w in _workers.Values)
                        if (!w.Lost && !hosts.Keys.Any(s => s.ToParsableString() == w.Key))
                        {
                            w.Lost = true;
                            _log.WriteLine($"cluster: worker {w.Info.Name} left the cluster");
                        }
            }
            catch (Exception) when (!_stop.IsCancellationRequested) { /* gateway trouble: try again */ }
            try { await Task.Delay(TimeSpan.FromSeconds(1), _stop.Token); } catch (OperationCanceledException) { }
        }
    }

    async Task Probe(string key)
    {
        var grain = _client.GetGrain<IWorkerGrain>(key);
        WorkerInfo info;
        try { info = await grain.Hello().WaitAsync(_o.CallTimeout, _stop.Token); }
        catch (Exception) { return; }   // not up yet, or gone: the next round tries again
        if (info.Error is not null)
        {
            lock (_lock) if (!_refused.Add(key)) return;
            _log.WriteLine($"cluster: refusing worker {info.Name}: it failed to load: {info.Error}");
            return;
        }
        var diffs = ProtocolId.Differences(_o.Protocol, info.Protocol);
        if (diffs.Count > 0)
        {
            lock (_lock) _refused.Add(key);
            _log.WriteLine($"cluster: refusing worker {info.Name}: its protocol differs ({string.Join("; ", diffs)})");
            return;
        }
        if (!info.Ready)
        {
            lock (_lock) if (!_announcedLoading.Add(key)) return;
            _log.WriteLine($"cluster: worker {info.Name} is loading the model");
            return;
        }
        string verb = "joined";
        lock (_lock)
        {
            if (_workers.TryGetValue(key, out var known))
            {
                if (!known.Lost || known.Busy) return;
                known.Lost = false;   // it answers again: it was slow, not dead
                verb = "answers again";
            }
            else _workers[key] = new Worker(key, grain, info);
        }
        _log.WriteLine($"cluster: worker {info.Name} {verb} ({info.Device})");
        _changed.Release();
    }

    public void Dispose()
    {
        _stop.Cancel();
        try { _discovery.Wait(TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
        try { _host.StopAsync(TimeSpan.FromSeconds(5)).GetAwaiter().GetResult(); } catch (Exception) { }
        _host.Dispose();
    }
}
