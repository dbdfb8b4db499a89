DROP TABLE one_time_links;
DROP TABLE api_tokens;
