DROP TABLE moto_projects;
