# Ruby Sidekiq (Debian's ruby-sidekiq): `sidekiq -c 10 -r ./sidekiq_job.rb`, Redis from REDIS_URL.
# The job INCRs through Sidekiq.redis (the worker's own pool).
#
#   ruby sidekiq_job.rb version            one line: versions and the Redis driver in use
#   ruby sidekiq_job.rb enqueue N single   perform_async N times (the first untimed)
#   ruby sidekiq_job.rb enqueue N bulk     Sidekiq::Client.push_bulk of N-1 after one untimed
require "json"
require "sidekiq"

# Sidekiq 6 uses the last redis-rb driver loaded (redis_connection.rb: Connection.drivers.last),
# so loading the hiredis driver, when Debian's ruby-hiredis is installed, is how an app picks it.
# Without it Sidekiq runs on redis-rb's pure-Ruby driver; `version` says which one ran.
begin
  require "redis/connection/hiredis"
rescue LoadError
  nil
end

# redis-rb 4.8 (Debian's, with Sidekiq 6.4) warns on every BRPOP and every push that Sidekiq 6.4
# calls it the old way: two stderr lines per job that are no part of Sidekiq's logging and that
# Sidekiq 6.5 no longer triggers. Silenced, so that logs off is off.
Redis.silence_deprecations = true

# Logs off: the per-job "start"/"done" lines are info; warn silences them. On is the default.
if ENV["BENCH_LOGS"] == "off"
  Sidekiq.configure_server { |config| config.logger.level = Logger::WARN }
end

class IncrJob
  include Sidekiq::Worker

  def perform(_i)
    Sidekiq.redis { |conn| conn.incr("bench:count") }
  end
end

if $PROGRAM_NAME == __FILE__
  case ARGV[0]
  when "version"
    driver = Sidekiq.redis { |conn| conn._client.driver.name.split("::").last }
    puts "Sidekiq #{Sidekiq::VERSION}, redis-rb #{Redis::VERSION}, #{driver} driver, Ruby #{RUBY_VERSION}"
  when "enqueue"
    n = ARGV[1].to_i
    IncrJob.perform_async(0)
    start = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    if ARGV[2] == "bulk"
      Sidekiq::Client.push_bulk("class" => IncrJob, "args" => (1...n).map { |i| [i] })
    else
      (1...n).each { |i| IncrJob.perform_async(i) }
    end
    seconds = Process.clock_gettime(Process::CLOCK_MONOTONIC) - start
    puts JSON.generate("seconds" => seconds, "timed" => n - 1)
  else
    abort "unknown command #{ARGV[0].inspect}"
  end
end
