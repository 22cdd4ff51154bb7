# MLflow tracking server with the PostgreSQL driver and S3 client the platform manifests use.
FROM python:3.11.11-slim-bookworm
RUN pip install --no-cache-dir mlflow==3.17.2 psycopg2-binary==2.9.10 boto3==1.35.99 \
    && useradd --uid 1000 mlflow
USER 1000
EXPOSE 5000
ENTRYPOINT ["mlflow"]
