@echo off
REM hiscore on a Windows laptop: Redis, workers, beat and web, each in its own window.
REM Needs Python 3.11 (the py launcher) and either a redis-server.exe on PATH (Memurai, or a
REM Redis build for Windows) or REDIS_URL naming a Redis that runs elsewhere (WSL, a VPS).
setlocal
cd /d "%~dp0"

if not exist .venv\Scripts\python.exe (
  py -3.11 -m venv .venv || python -m venv .venv || goto :fail
)
.venv\Scripts\python -m pip install --quiet -e ".[test]" || goto :fail

if not defined HISCORE_CONFIG set HISCORE_CONFIG=development
if not exist instance\redis mkdir instance\redis
if not defined REDIS_URL (
  where redis-server >nul 2>nul || (
    echo redis-server.exe is not on PATH: install Memurai or set REDIS_URL. & goto :fail
  )
  start "hiscore redis" redis-server --port 6390 --bind 127.0.0.1 --appendonly yes --dir instance\redis
  set REDIS_URL=redis://127.0.0.1:6390/0
)

REM Celery does not support Windows officially; the solo pool is the one that works there.
start "hiscore worker" .venv\Scripts\celery -A celery_worker worker --pool=solo --loglevel=INFO --queues=ingest --hostname=ingest@%%COMPUTERNAME%%
start "hiscore maintenance" .venv\Scripts\celery -A celery_worker worker --pool=solo --loglevel=INFO --queues=maintenance --hostname=maintenance@%%COMPUTERNAME%%
start "hiscore beat" .venv\Scripts\celery -A celery_worker beat --loglevel=INFO
REM gunicorn does not run on Windows: the threaded development server stands in for it.
start "hiscore web" .venv\Scripts\python manage.py run --host 127.0.0.1 --port 5000 --with-threads
echo hiscore is starting on http://127.0.0.1:5000/ (close the windows to stop it)
exit /b 0

:fail
echo Startup failed.
exit /b 1
