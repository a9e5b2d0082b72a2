# The Ruby side of tests/test_sidekiq_interop.py: Debian's ruby-sidekiq (6.4) sharing one Redis
# (REDIS_URL) with a kiqpy worker in JSON mode.
#
#   sidekiq -q ruby -r ./tests/interop_jobs.rb     runs the jobs below
#   ruby tests/interop_jobs.rb push TAG            PyRecord on queue "python" (a kiqpy job)
#   ruby tests/interop_jobs.rb schedule TAG        the same, due in one second
#   ruby tests/interop_jobs.rb bulk TAG N          push_bulk of N PyRecord jobs
#   ruby tests/interop_jobs.rb fail TAG            PyFails (kiqpy retries it)
#   ruby tests/interop_jobs.rb unknown TAG         RubyOnly on queue "python" (kiqpy has no such job)
#   ruby tests/interop_jobs.rb dead TAG            PyFails with retry 0 (kiqpy kills it)
#   ruby tests/interop_jobs.rb quiet IDENTITY      Sidekiq::Process#quiet! of that process
#   ruby tests/interop_jobs.rb slow SECONDS        PySlow (kiqpy runs it that long)
#   ruby tests/interop_jobs.rb state               JSON: what Sidekiq's API reads (processes,
#                                                  running jobs, retries, stats)
require "json"
require "sidekiq"
require "sidekiq/api"

Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

# Every job this process runs is recorded, as Sidekiq saw it, with its latency computed the way
# Sidekiq's own code does (Time.now.to_f - enqueued_at): a kiqpy timestamp in the wrong unit
# shows here as a latency of about -1.7e12 s.
class Recorder
  def call(_worker, job, _queue)
    seen = job.merge("latency" => Time.now.to_f - job["enqueued_at"].to_f)
    Sidekiq.redis { |conn| conn.rpush("interop:ruby", JSON.generate(seen)) }
    yield
  end
end

Sidekiq.configure_server do |config|
  config.server_middleware { |chain| chain.add Recorder }
  # Poll the schedule every second or so (the default waits 5 s x processes, plus 10 s at boot).
  config.options[:poll_interval_average] = 1
end

class RubyRecord
  include Sidekiq::Worker
  sidekiq_options queue: "ruby"

  def perform(tag)
  end
end

class RubyFails
  include Sidekiq::Worker
  sidekiq_options queue: "ruby", retry: 3

  def perform(tag)
    raise ArgumentError, "ruby fails #{tag}"
  end
end

class RubySlow
  include Sidekiq::Worker
  sidekiq_options queue: "ruby"

  def perform(seconds)
    sleep seconds
  end
end

def time_of(value)
  value.is_a?(Numeric) ? value : nil
end

if $PROGRAM_NAME == __FILE__
  py = { "queue" => "python", "retry" => true }
  case ARGV[0]
  when "push"
    puts Sidekiq::Client.push(py.merge("class" => "PyRecord", "args" => [ARGV[1]]))
  when "schedule"
    puts Sidekiq::Client.push(py.merge("class" => "PyRecord", "args" => [ARGV[1]],
                                       "at" => Time.now.to_f + 1))
  when "bulk"
    args = (0...ARGV[2].to_i).map { |i| ["#{ARGV[1]}-#{i}"] }
    puts JSON.generate(Sidekiq::Client.push_bulk(py.merge("class" => "PyRecord", "args" => args)))
  when "dead"
    puts Sidekiq::Client.push(py.merge("class" => "PyFails", "args" => [ARGV[1]], "retry" => 0))
  when "quiet"
    Sidekiq::ProcessSet.new.each { |p| p.quiet! if p.identity == ARGV[1] }
  when "unknown"
    puts Sidekiq::Client.push(py.merge("class" => "RubyOnly", "args" => [ARGV[1]]))
  when "fail"
    puts Sidekiq::Client.push(py.merge("class" => "PyFails", "args" => [ARGV[1]]))
  when "slow"
    puts Sidekiq::Client.push(py.merge("class" => "PySlow", "args" => [ARGV[1].to_f]))
  when "state"
    processes = Sidekiq::ProcessSet.new.map do |p|
      { "identity" => p.identity, "queues" => p["queues"], "concurrency" => p["concurrency"],
        "busy" => p["busy"], "quiet" => p.stopping?, "tag" => p.tag,
        "started_at" => p["started_at"] }
    end
    work = Sidekiq::WorkSet.new.map do |process, thread, w|
      { "process" => process, "thread" => thread, "queue" => w["queue"],
        "class" => w["payload"]["class"], "jid" => w["payload"]["jid"],
        "run_at" => w["run_at"] }
    end
    sorted = lambda do |set|
      set.map do |entry|
        { "jid" => entry.jid, "class" => entry.klass, "at" => entry.at.to_f,
          "failed_at" => entry["failed_at"], "retried_at" => entry["retried_at"],
          "created_at" => entry["created_at"], "enqueued_at" => entry["enqueued_at"],
          "retry_count" => entry["retry_count"], "error_class" => entry["error_class"],
          "error_message" => entry["error_message"] }
      end
    end
    stats = Sidekiq::Stats.new
    history = Sidekiq::Stats::History.new(1)
    puts JSON.generate("processes" => processes, "work" => work,
                       "retries" => sorted.call(Sidekiq::RetrySet.new),
                       "dead" => sorted.call(Sidekiq::DeadSet.new),
                       "processed" => stats.processed, "failed" => stats.failed,
                       "processed_today" => history.processed.values.first,
                       "failed_today" => history.failed.values.first)
  else
    abort "unknown command #{ARGV[0].inspect}"
  end
end
