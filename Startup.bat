@echo off
REM hiscore on a Windows laptop: Redis, two workers, beat and web, each in its own window.
REM Needs Python 3.11 (the py launcher) and either a redis-server.exe (Memurai, or a Redis build
REM for Windows) named by REDIS_SERVER or found on PATH, or REDIS_URL naming a Redis that runs
REM elsewhere (WSL, a VPS).
setlocal EnableExtensions
cd /d "%~dp0"

if not exist .venv\Scripts\python.exe (
  py -3.11 -m venv .venv || python -m venv .venv || goto :fail
)
.venv\Scripts\python -m pip install --quiet -e ".[test]" || goto :fail

if not defined HISCORE_CONFIG set "HISCORE_CONFIG=development"
if not defined HISCORE_REDIS_PORT set "HISCORE_REDIS_PORT=6390"
if defined REDIS_URL goto :processes

REM The Redis to start: REDIS_SERVER, else redis-server.exe on PATH.
if not defined REDIS_SERVER for %%R in (redis-server.exe) do set "REDIS_SERVER=%%~$PATH:R"
if not defined REDIS_SERVER (
  echo No redis-server.exe on PATH: install Memurai, or set REDIS_SERVER or REDIS_URL.
  goto :fail
)
REM Its client: redis-cli.exe (or Memurai's memurai-cli.exe) beside it, else redis-cli.exe on PATH.
for %%S in ("%REDIS_SERVER%") do set "REDIS_DIR=%%~dpS"
set "REDIS_CLI="
if exist "%REDIS_DIR%redis-cli.exe" set "REDIS_CLI=%REDIS_DIR%redis-cli.exe"
if not defined REDIS_CLI if exist "%REDIS_DIR%memurai-cli.exe" set "REDIS_CLI=%REDIS_DIR%memurai-cli.exe"
if not defined REDIS_CLI for %%C in (redis-cli.exe) do set "REDIS_CLI=%%~$PATH:C"

REM A Redis left running on the port by an earlier start is stopped first. A plain SHUTDOWN
REM flushes its append-only file before it exits (NOSAVE would not); when none runs, the
REM client's complaint is ignored.
if defined REDIS_CLI "%REDIS_CLI%" -p %HISCORE_REDIS_PORT% shutdown >nul 2>nul

if not exist instance\redis mkdir instance\redis
start "hiscore redis" "%REDIS_SERVER%" --port %HISCORE_REDIS_PORT% --bind 127.0.0.1 --appendonly yes --appendfsync everysec --dir instance\redis
set "REDIS_URL=redis://127.0.0.1:%HISCORE_REDIS_PORT%/0"

REM Wait (up to 20 s) for it to answer, when there is a client to ask.
if not defined REDIS_CLI goto :processes
for /l %%I in (1,1,20) do (
  "%REDIS_CLI%" -p %HISCORE_REDIS_PORT% ping >nul 2>nul && goto :processes
  ping -n 2 127.0.0.1 >nul
)
echo Redis did not answer on port %HISCORE_REDIS_PORT%: see the "hiscore redis" window.
goto :fail

:processes
REM The Procfile's processes. Celery does not support Windows officially: the solo pool is the
REM one that works there (one task at a time per worker). Celery makes the %%h below the host name.
start "hiscore worker" .venv\Scripts\celery -A celery_worker worker --pool=solo --loglevel=INFO --queues=ingest --hostname=ingest@%%h
start "hiscore maintenance" .venv\Scripts\celery -A celery_worker worker --pool=solo --loglevel=INFO --queues=maintenance --hostname=maintenance@%%h
start "hiscore beat" .venv\Scripts\celery -A celery_worker beat --loglevel=INFO
REM gunicorn does not run on Windows: Flask's threaded server stands in for it.
start "hiscore web" .venv\Scripts\python manage.py run --host 127.0.0.1 --port 5000 --with-threads
echo hiscore is starting on http://127.0.0.1:5000/ (close the windows to stop it)
exit /b 0

:fail
echo Startup failed.
exit /b 1
